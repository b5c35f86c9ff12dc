"""twistd plugin entry: `twistd pyd`. Keep it thin; no __init__.py in this directory."""

from twisted.application.service import ServiceMaker

pyd = ServiceMaker(
    "pyd",
    "pyd.tap",
    "Docker-Engine-API compatible container daemon",
    "pyd",
)
