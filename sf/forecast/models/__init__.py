"""Neural forecasters, one file each; importing this package registers them all (see sf.forecast.base)."""

from sf.forecast.models import sf_model  # noqa: E402,F401  (issue 4: sf's fusion + (Bi)LSTM)
from sf.forecast.models import ekambaram, gtm  # noqa: E402,F401  (issue 5: comparison models)
