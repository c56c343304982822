"""Evaluation as in the paper: gaps between particles, spectra/FRC, PSNR/SSIM, reports."""
