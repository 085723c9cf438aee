"""Built-in worlds: procedural Shapes (image, video, multi-view) and Fashion-MNIST, with their judges."""
