"""Networks: U-Net generator, VGG-style discriminator, losses and the SRGAN model."""
