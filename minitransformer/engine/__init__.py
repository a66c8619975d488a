"""The math: configs, kernels, layers, attention, blocks, GPT and ViT, the optimizer, gradient
checks. It imports only errors; it never opens a file and changes no process state."""
