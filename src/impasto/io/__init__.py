"""Files in and out: images (atomic writes with metadata), mask files, loss histories, figures."""
