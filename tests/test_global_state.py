"""Importing and using aecompress leaves the process's Pillow and torch settings alone."""

import io

import torch
from PIL import Image

import aecompress
from aecompress import bench, codec, image

from conftest import smooth_image


def test_reading_and_coding_leave_pillows_bomb_guard(tiny):
    guard = Image.MAX_IMAGE_PIXELS
    buf = io.BytesIO()
    Image.fromarray(smooth_image(40, 56)).save(buf, "PNG")
    picture = image.read_image(buf.getvalue(), "in.png")
    data = aecompress.encode(picture, model=tiny)
    codec.decode(data, model=tiny)
    assert Image.MAX_IMAGE_PIXELS == guard


def test_bench_restores_torchs_thread_count(tmp_path, monkeypatch):
    threads = torch.get_num_threads()
    def measured(data_dir, threads: int = 1):
        return torch.get_num_threads()

    monkeypatch.setattr(bench, "_run", measured)
    assert bench.run(tmp_path, threads=threads + 1) == threads + 1
    assert torch.get_num_threads() == threads
