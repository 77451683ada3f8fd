"""Training: one model for every quality, resumable, on a CPU or on GPUs under torchrun.

    loss = lambda(t) * 255**2 * MSE + bpp,   t ~ U[0, 1] per crop (the quality axis)

A denoising model sees a share of its crops with synthetic noise (Gaussian or Poisson-Gaussian,
level ~ U[0, 50] on the 0..255 scale) and the level as a condition; the MSE is always taken
against the clean crop. There is no auxiliary loss: the support of each z table is found at
export by scanning the learned CDF (`entropy.factorized_tables`). `init` starts a new run from
another run's checkpoint or a weights file (another lambda range, with or without denoising, a
wider latent y, a context model): a new learning-rate cycle. With `context_only` only the
context model learns, on the rate alone (g_s never runs): it is added to a trained model and
leaves everything else exactly as it was; with `latent_reuse` it also skips most runs of g_a,
drawing stored latents again (`LatentPool`). With `encoder_only` only the encoder side learns
(g_a, h_a, the gains and the noise and quality conditioning), on the full RD loss: the decoder
and every table it reads stay bit-identical, so g_a can catch up with an entropy model that
changed after it was trained (a context model added later), at no risk to the decoder. With
`inverse_gains` as well, the decoder's inverse gains learn too (one vector per anchor, no
table), which a new lambda range needs: every quality then means another trade-off. With
`decoder_only` the mirror image: only g_s and the inverse gains learn, on the distortion of
the latents the frozen encoder and entropy model really code (the rate cannot move), so a g_s
widened with `width` learns to make more of the same bits.

Every default lives in `TrainConfig`. A checkpoint holds the config, model, optimizer, step
and RNG states, so `--resume` continues the same run. Under `torchrun --nproc-per-node N`
the model is wrapped in DistributedDataParallel and each rank draws its own crops.
"""

from .config import TrainConfig, config_from_dict, load_checkpoint, save_checkpoint
from .data import IMAGE_SUFFIXES, CropSampler, LatentPool, add_noise, list_images, noise_levels
from .export import export_run
from .grow import _remap_gains, load_source, warm_start, widen_latent, widen_transforms, widen_window
from .loop import (
                   DECODER,
                   ENCODER,
                   bf16_is_fast,
                   evaluate,
                   latent_rate_loss,
                   learning_rate,
                   rd_loss,
                   set_context_only,
                   set_finetune,
                   train,
                   train_only,
)

__all__ = ["DECODER", "ENCODER", "IMAGE_SUFFIXES", "CropSampler", "LatentPool", "TrainConfig", "add_noise",
           "bf16_is_fast", "config_from_dict", "evaluate", "export_run", "latent_rate_loss", "learning_rate",
           "list_images", "load_checkpoint", "load_source", "noise_levels", "rd_loss", "save_checkpoint",
           "set_context_only", "set_finetune", "train", "train_only", "warm_start", "widen_latent",
           "widen_transforms", "widen_window", "_remap_gains"]
