"""The plugin's tests run users' test files through pytest's own plugin-testing fixture."""

pytest_plugins = ["pytester"]
