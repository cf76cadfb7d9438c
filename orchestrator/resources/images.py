"""SageMaker image names this server stands in for with its own images. Pure.

Code written for SageMaker names SageMaker's images: the SDK's ``image_uris.retrieve`` gives
``382416733822.dkr.ecr.us-east-1.amazonaws.com/linear-learner:1`` for the built-in
linear-learner and
``683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3`` for
scikit-learn. Neither can be pulled here, and both have a counterpart:

- the built-in algorithms: SageMaker's image of one (the registry account of its region, per
  the SDK's ``image_uri_config/linear-learner.json``, tag ``1`` or ``latest``), or the short
  alias (``linear-learner``, ``mlp``; SageMaker has no image of an mlp, so an alias only), as a
  ``TrainingImage`` runs the project's built-in, as ``AlgorithmName`` does; as a serving
  ``Image`` it is the project's serving image (the artifact carries its own ``code/inference.py``);
- scikit-learn (any version tag, per ``image_uri_config/sklearn.json``): a ``TrainingImage``
  runs the job in script mode (``sagemaker_program``, ``sagemaker_submit_directory``) on the
  project's training image, a serving ``Image`` the project's serving image with the model's
  ``SAGEMAKER_PROGRAM`` / ``SAGEMAKER_SUBMIT_DIRECTORY``, with the scikit-learn installed there.

Every other image is the user's own: run as given where a backend runs containers, refused
(naming the field) where it does not. This module is the one place that mapping lives.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

# The built-in algorithms, by the name AlgorithmName and the aliases use (the test pins this to
# ``orchestrator.algorithms.hyperparameters.ALGORITHMS``).
BUILTIN_ALGORITHMS = ("linear-learner", "mlp")
Kind = Literal["builtin", "framework"]

# Region -> (linear-learner's registry account, scikit-learn's), from the SageMaker Python SDK's
# image_uri_config (2.257.7); tests/core/test_images.py checks them against the SDK's tables.
REGISTRIES: dict[str, tuple[str, str]] = {
    "af-south-1": ("455444449433", "510948584623"),
    "ap-east-1": ("286214385809", "651117190479"),
    "ap-northeast-1": ("351501993468", "354813040037"),
    "ap-northeast-2": ("835164637446", "366743142698"),
    "ap-northeast-3": ("867004704886", "867004704886"),
    "ap-south-1": ("991648021394", "720646828776"),
    "ap-south-2": ("628508329040", "628508329040"),
    "ap-southeast-1": ("475088953585", "121021644041"),
    "ap-southeast-2": ("712309505854", "783357654285"),
    "ap-southeast-3": ("951798379941", "951798379941"),
    "ap-southeast-4": ("106583098589", "106583098589"),
    "ca-central-1": ("469771592824", "341280168497"),
    "ca-west-1": ("190319476487", "190319476487"),
    "cn-north-1": ("390948362332", "450853457545"),
    "cn-northwest-1": ("387376663083", "451049120500"),
    "eu-central-1": ("664544806723", "492215442770"),
    "eu-central-2": ("680994064768", "680994064768"),
    "eu-north-1": ("669576153137", "662702820516"),
    "eu-south-1": ("257386234256", "978288397137"),
    "eu-south-2": ("104374241257", "104374241257"),
    "eu-west-1": ("438346466558", "141502667606"),
    "eu-west-2": ("644912444149", "764974769150"),
    "eu-west-3": ("749696950732", "659782779980"),
    "il-central-1": ("898809789911", "898809789911"),
    "me-central-1": ("272398656194", "272398656194"),
    "me-south-1": ("249704162688", "801668240914"),
    "sa-east-1": ("855470959533", "737474898029"),
    "us-east-1": ("382416733822", "683313688378"),
    "us-east-2": ("404615174143", "257758044811"),
    "us-gov-east-1": ("237065988967", "237065988967"),
    "us-gov-west-1": ("226302683700", "414596584902"),
    "us-iso-east-1": ("490574956308", "833128469047"),
    "us-isob-east-1": ("765400339828", "281123927165"),
    "us-isof-east-1": ("108575199400", "108575199400"),
    "us-isof-south-1": ("124985052026", "124985052026"),
    "us-west-1": ("632365934929", "746614075791"),
    "us-west-2": ("174872318107", "246618743249"),
}
_ECR = re.compile(
    r"^(?P<account>[0-9]{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.[a-z0-9.-]+/"
    r"(?P<repository>[a-z0-9._-]+):(?P<tag>[A-Za-z0-9._-]+)$"
)
_ALIAS_TAGS = ("", ":1", ":latest")
_LINEAR_TAGS = ("1", "latest")
_SKLEARN_TAG = re.compile(r"^[0-9]+\.[0-9]+(\.[0-9]+)?(-[0-9]+)?(-arm64)?-cpu-py3$")


@dataclass(frozen=True)
class StandIn:
    """What one of SageMaker's images is here: a built-in algorithm (``name`` as in
    ``AlgorithmName``) or a framework whose scripts run on the project's own images."""

    kind: Kind
    name: str  # "linear-learner", "mlp", "scikit-learn"
    image: str  # as the request named it


def stand_in(image: str | None) -> StandIn | None:
    """The project's counterpart of ``image``, or None (no image, or the user's own)."""
    if not image:
        return None
    for name in BUILTIN_ALGORITHMS:
        if image in {name + tag for tag in _ALIAS_TAGS}:
            return StandIn("builtin", name, image)
    m = _ECR.match(image)
    if m is None:
        return None
    accounts = REGISTRIES.get(m["region"])
    if accounts is None:
        return None
    linear, sklearn = accounts
    repository, tag, account = m["repository"], m["tag"], m["account"]
    if repository == "linear-learner" and account == linear and tag in _LINEAR_TAGS:
        return StandIn("builtin", "linear-learner", image)
    if repository == "sagemaker-scikit-learn" and account == sklearn and _SKLEARN_TAG.match(tag):
        return StandIn("framework", "scikit-learn", image)
    return None


def own_image(image: str | None) -> str | None:
    """The image to run as given: ``image`` unless it is absent or one of SageMaker's that
    this server stands in for."""
    return None if not image or stand_in(image) is not None else image
