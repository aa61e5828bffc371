"""The blocking publisher, for code with no event loop (a Celery task, a script,
a WSGI view): ``skyhooks.Publisher``, sending over urllib3 through
:class:`Urllib3Transport` (``transport=Urllib3Transport(per_origin)`` sizes its pool).
"""

from ._publisher import Publisher
from ._transport import Urllib3Transport

__all__ = ["Publisher", "Urllib3Transport"]
