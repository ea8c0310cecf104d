"""The simulated CXL type-3 device behind the mailbox: commands, payloads, return
codes and state.  Handlers register themselves with :func:`.model.handles`; importing
this package imports every family."""

from . import background as _background  # noqa: F401  (registers the handlers)
from . import commands as _commands  # noqa: F401  (registers the handlers)
from . import events as _events  # noqa: F401  (registers the handlers)
from . import features as _features  # noqa: F401  (registers the handlers)
from . import media as _media  # noqa: F401  (registers the handlers)
