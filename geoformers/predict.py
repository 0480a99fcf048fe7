"""`python -m geoformers.predict RUN ...`: the same as the `geoformers_predict` command (see `geoformers.train.predict`)."""
# Written by hand, not exported from a notebook: nbdev cannot export one notebook to two modules idempotently.
from geoformers.train.predict import predict_cli

if __name__ == '__main__': predict_cli()
