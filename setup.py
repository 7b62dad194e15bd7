"""setuptools details of the Python core; the metadata is in pyproject.toml."""

from pathlib import Path

from setuptools import find_packages, setup


def requirements() -> list[str]:
    """The runtime requirements, one per line of inst/python/requirements.txt."""
    text = (Path(__file__).parent / "inst" / "python" / "requirements.txt").read_text()
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line]


setup(
    package_dir={"": "inst/python"},
    packages=find_packages("inst/python", include=["equivariance", "equivariance.*"]),
    package_data={"equivariance": ["data/*"]},
    install_requires=requirements(),
)
