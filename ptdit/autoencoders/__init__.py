"""Autoencoders behind one interface (`ptdit.autoencoders.base.Autoencoder`)."""
