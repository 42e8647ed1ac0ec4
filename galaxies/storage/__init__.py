"""Files the project writes and reads: whole or absent, and checked against their contracts.

`atomic` (writes that are whole or absent), `files` (the HDF5 data sets and predictions),
`chunked` (a data set read block by block), `resumable` (files a killed run can continue).
"""
