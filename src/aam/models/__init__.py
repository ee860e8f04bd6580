"""Plain `nn.Module`s: tensors in, tensors out, no file access."""
