"""User-facing errors: their message is shown as is, in Blender's report area or on the terminal."""


class FacePolicyError(Exception):
    """An error whose message speaks the user's language and needs no traceback."""


class AudioError(FacePolicyError):
    """The audio input could not be used."""


class TrackFormatError(FacePolicyError):
    """A FaceTrack file (JSON, Live Link CSV) could not be read."""


class AssetError(FacePolicyError):
    """A bundled asset (model, head, preset) is missing or corrupt."""


class RigError(FacePolicyError):
    """The target object cannot be animated as it is."""


class Cancelled(FacePolicyError):
    """The user cancelled a running job."""
