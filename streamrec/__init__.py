"""streamrec: real-time face recognition on live video.

The face API: :class:`FaceModels` (detector + embedder over built engines, what the pipeline
and every command detect and embed through), with :class:`MTCNN`, :class:`FaceEmbedder` and
:class:`FaceDetections` underneath.
"""

from streamrec.detect.mtcnn import MTCNN, MTCNNConfig
from streamrec.detect.types import FaceDetections
from streamrec.embed.facenet import EmbedConfig, FaceEmbedder
from streamrec.faces import FaceModels, ModelsConfig

__all__ = ["MTCNN", "EmbedConfig", "FaceDetections", "FaceEmbedder", "FaceModels", "MTCNNConfig", "ModelsConfig"]
__version__ = "0.1.0"
