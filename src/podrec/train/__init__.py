"""Training: choose models on a validation split, fit them on stored events, save them."""
