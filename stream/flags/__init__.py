"""The flag lifecycle: who becomes inactive or never active, published exactly once."""
