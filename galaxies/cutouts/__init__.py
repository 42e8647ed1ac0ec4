"""A person's own images: FITS cutouts and uploads, read, checked, brought to the stamp, measured.

`fits_files` (images, noise maps and PSFs from FITS), `uploads` (a 64 x 64 upload),
`measure_inputs` (what `galaxies measure` is given, checked), `psf_wings` (the light a PSF
image cut inside its wings leaves out), `segmentation` (background,
noise and other sources), `resampling` (to the simulation's pixels), `measure` (the estimate
and its domain).
"""
