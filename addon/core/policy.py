"""The Neural engine's public names in one import, for training, export, benchmarks and the live stream: the model
files (core.model_files), the sampler (core.sampler) and the engine that composes them (core.neural)."""

from .model_files import MANIFEST, MODEL_DIR, ModelFiles, create_session, default_model_dir, read_model_files
from .neural import (
    ARTICULATION_SMOOTHING,
    DEFAULT_ACCURACY,
    NeuralEngine,
    prior_hold,
    recognised_evidence,
    sample_with_evidence,
    seal_bilabials,
    smooth_articulation,
    states_to_track,
    vowel_mask,
)
from .sampler import (
    ARTICULATION,
    CFG_AXES,
    LISTENER_BLOCK,
    MAX_GROUP_STREAMS,
    NUM_FLAGS,
    NeuralPolicy,
    SampleSettings,
    ddim_timesteps,
    ddim_update,
    emotion_vector,
    frame_noise,
)

__all__ = [
    "ARTICULATION", "ARTICULATION_SMOOTHING", "CFG_AXES", "DEFAULT_ACCURACY", "LISTENER_BLOCK", "MANIFEST",
    "MAX_GROUP_STREAMS", "MODEL_DIR", "NUM_FLAGS", "ModelFiles", "NeuralEngine", "NeuralPolicy", "SampleSettings",
    "create_session", "ddim_timesteps", "ddim_update", "default_model_dir", "emotion_vector", "frame_noise",
    "prior_hold", "read_model_files", "recognised_evidence", "sample_with_evidence", "seal_bilabials",
    "smooth_articulation", "states_to_track", "vowel_mask",
]
