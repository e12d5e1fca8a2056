"""Python widgets shared by the pages: Viewers made of Panel's own widgets, with no JavaScript of their own."""
