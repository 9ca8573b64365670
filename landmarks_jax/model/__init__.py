"""The landmark model: shape and appearance encoders, SPADE generator, masks, discriminator and losses."""
