"""The one exception of numcnn explore: a request or a run folder that cannot be served, said in one line.

``status`` is the HTTP status the server answers with (400 a malformed or out-of-range request, 404 an unknown
layer or missing test images, 413 an upload too large, 415 not an image); the command line prints the message and
exits with status 2, like the other numcnn commands.
"""

from __future__ import annotations


class ExploreError(ValueError):
    """A user's mistake (bad request, wrong run folder): ``str(e)`` is one line for the user, ``e.status`` the HTTP
    status."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(" ".join(str(message).split()))
        self.status = status
