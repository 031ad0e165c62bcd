"""A python-for-android recipe for msgspec, for a p4a older than v2026.05.09 (which has
none): msgspec has a C extension, so pip's wheel for the building machine cannot go into an
APK, and p4a must compile it for each Android ABI.

A sketch, NOT BUILT HERE (no Android SDK/NDK on this machine). It is for p4a v2024.01.21
(Python 3.11.5 on the device, the Python Outpost is tested with): set
``p4a.branch = v2024.01.21`` and ``p4a.local_recipes = ./packaging/android/recipes`` in
buildozer.spec. msgspec 0.19.0 is the last release whose sdist still builds with a plain
``setup.py`` (CompiledComponentsPythonRecipe runs ``setup.py build_ext`` with the NDK's
compiler); pyproject.toml allows it (``msgspec>=0.19``). p4a v2026.05.09 and later have
their own recipe (msgspec 0.21.1, built as a pyproject): leave this one unused there.
"""

from pythonforandroid.recipe import CompiledComponentsPythonRecipe  # type: ignore[import-not-found]


class MsgspecRecipe(CompiledComponentsPythonRecipe):  # type: ignore[misc]
    version = "0.19.0"
    url = "https://pypi.python.org/packages/source/m/msgspec/msgspec-{version}.tar.gz"
    site_packages_name = "msgspec"
    depends = ["setuptools"]  # noqa: RUF012 (p4a reads the class attribute)
    call_hostpython_via_targetpython = False


recipe = MsgspecRecipe()
