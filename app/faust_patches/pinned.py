"""Install a replacement into Faust only for the Faust version it was written for."""
from __future__ import annotations

import logging

log = logging.getLogger(__name__)

PATCHED_FAUST_VERSIONS = ("0.15.3",)


def install_for_pinned_faust(owner: type, name: str, replacement, what: str) -> bool:
    """Set `owner.name = replacement` when Faust is the version the patch was written for;
    otherwise leave Faust as it is and say so. Returns whether it was installed."""
    import faust

    if faust.__version__ not in PATCHED_FAUST_VERSIONS:
        log.warning("faust %s not known to this patch: %s left as is", faust.__version__, what)
        return False
    setattr(owner, name, replacement)
    return True
