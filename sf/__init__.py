"""sf: forecast e-commerce product sales from images, text and sales history."""

__version__ = "0.1.0"
