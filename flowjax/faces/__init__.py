"""Real faces: alignment to OpenAI's crop, face detectors, identity folders, attribute vectors.

* ``align`` -- eyes to OpenAI's CelebA-HQ crop layout, photo by photo, with a
  policy for photos with no face or several (raise, or skip and list them);
* ``detectors`` -- the detector contract, MTCNN, and detector specs;
* ``dlib_models`` -- dlib's detector, landmarks and face embedder, offline,
  from checksum-verified model files;
* ``identity_folders`` -- ``root/<identity>/*.png`` trees or explicit mappings;
* ``openai_attributes`` -- OpenAI's CelebA attribute directions (``z_manipulate.npy``).

May import: flowjax.io.
"""

from flowjax.faces.align import (AlignedImageSet, AlignmentError, AlignmentInfo, align_image,
                                 align_photo, load_aligned_identities, load_aligned_images)
from flowjax.faces.detectors import Detector, default_detector, detector_from_spec
from flowjax.faces.dlib_models import DlibDetector, dlib_detector
from flowjax.faces.identity_folders import identity_files, load_identities
from flowjax.faces.openai_attributes import CELEBA_ATTRIBUTES, AttributeVectors, load_attribute_vectors

__all__ = [
    "align_image", "align_photo", "AlignmentInfo", "AlignmentError", "AlignedImageSet",
    "load_aligned_images",
    "load_aligned_identities", "Detector", "default_detector", "detector_from_spec", "DlibDetector",
    "dlib_detector", "load_identities", "identity_files", "CELEBA_ATTRIBUTES", "AttributeVectors",
    "load_attribute_vectors",
]
