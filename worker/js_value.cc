// placeholder: filled in by its owner's branch
