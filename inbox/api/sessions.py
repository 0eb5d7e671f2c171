from __future__ import annotations

from ..web.endpoint import Endpoints

api = Endpoints("auth")
