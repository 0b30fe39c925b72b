"""Names several modules share, in a module that imports nothing (so none of them loops back)."""

ARCHS = ("resnet18", "resnet34", "resnet50")
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
