"""What the tests share: ``from support.helpers import eventually`` works from every test
directory (pyproject.toml puts ``tests`` on pytest's pythonpath; scripts run from the root
import ``tests.support``)."""
