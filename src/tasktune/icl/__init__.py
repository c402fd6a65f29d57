"""In-context learning's inductive biases (Si et al. 2023): underspecified demonstrations."""
