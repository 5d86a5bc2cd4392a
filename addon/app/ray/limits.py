"""What the Ray executor ships through Ray's object store, and how: in a module of its own so that the bake
command's options (app.ray.arguments) name them without importing the executor."""

DATA_MODES = ("shared", "object-store")
OBJECT_STORE_LIMIT = 64 * 1024 * 1024  # inputs of one row shipped through the object store, in bytes
BLEND_LIMIT = 1024 * 1024 * 1024  # a --blend file, shipped once for the whole batch
