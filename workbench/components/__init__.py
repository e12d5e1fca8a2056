"""Browser-side and shared widgets of the workbench's pages."""
