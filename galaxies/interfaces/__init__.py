"""What a person uses: the command line, the pipeline behind `make run`, the app's logic, plots.

`cli` (the ``galaxies`` command, one module per family of commands), `pipeline` (``make run``),
`app_support` and `app_cutouts` (the Streamlit explorer's logic), `plots` (figures shared by
notebooks, report and app).
"""
