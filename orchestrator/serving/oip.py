"""KServe's Open Inference Protocol (v2), the pure part: JSON tensors to numpy and back.

A request is ``{"id"?, "parameters"?, "inputs": [{"name", "shape", "datatype", "data"}],
"outputs"?: [{"name"}]}``. One input reaches the model as one array (shaped by ``shape``);
several reach a ``predict_fn`` as a dict of arrays by name. The prediction is answered as one
output tensor (named by the request's first ``outputs`` entry, else ``"predict"``), or one
per key when the prediction is a dict. Errors are ``ValidationError`` naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from orchestrator.errors import ValidationError

DATATYPES: dict[str, str] = {
    "BOOL": "bool",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
    "BYTES": "object",
}
_BY_KIND = {np.dtype(v).str: k for k, v in DATATYPES.items() if v != "object"}
DEFAULT_OUTPUT = "predict"


@dataclass(frozen=True, slots=True)
class InferRequest:
    id: str | None
    data: Any  # one array, or a dict of arrays by input name
    output_names: tuple[str, ...]


def decode_request(body: bytes) -> InferRequest:
    """Parse an infer request body; raises ``ValidationError`` naming the bad field."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise ValidationError(f"the body is not valid JSON: {e}", field="body") from e
    if not isinstance(document, dict):
        raise ValidationError('the body must be a JSON object with "inputs"', field="body")
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise ValidationError("id must be a string", field="id")
    inputs = document.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise ValidationError(
            'inputs must be a non-empty list of {"name", "shape", "datatype", "data"}',
            field="inputs",
        )
    arrays = {}
    for index, tensor in enumerate(inputs):
        name, array = _decode_tensor(tensor, f"inputs[{index}]")
        if name in arrays:
            raise ValidationError(f"input {name!r} appears twice", field=f"inputs[{index}].name")
        arrays[name] = array
    outputs = document.get("outputs") or []
    if not isinstance(outputs, list):
        raise ValidationError('outputs must be a list of {"name"}', field="outputs")
    names = []
    for index, wanted in enumerate(outputs):
        if not isinstance(wanted, dict) or not isinstance(wanted.get("name"), str):
            raise ValidationError("each output needs a string name", field=f"outputs[{index}]")
        names.append(wanted["name"])
    data = next(iter(arrays.values())) if len(arrays) == 1 else arrays
    return InferRequest(request_id, data, tuple(names))


def _decode_tensor(tensor: Any, where: str) -> tuple[str, Any]:
    if not isinstance(tensor, dict):
        raise ValidationError("must be an object", field=where)
    name = tensor.get("name")
    if not isinstance(name, str) or not name:
        raise ValidationError("needs a non-empty string name", field=f"{where}.name")
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise ValidationError(
            "shape must be a list of non-negative integers", field=f"{where}.shape"
        )
    datatype = tensor.get("datatype")
    dtype = DATATYPES.get(datatype) if isinstance(datatype, str) else None
    if dtype is None:
        raise ValidationError(
            f"datatype {datatype!r} is not one of {', '.join(DATATYPES)}",
            field=f"{where}.datatype",
        )
    if "data" not in tensor:
        raise ValidationError("data is missing", field=f"{where}.data")
    try:
        array = np.asarray(tensor["data"], dtype=dtype)
    except (ValueError, TypeError) as e:
        raise ValidationError(f"data is not {datatype}: {e}", field=f"{where}.data") from e
    expected = 1
    for d in shape:
        expected *= d
    if array.size != expected:
        raise ValidationError(
            f"data has {array.size} elements but shape {shape} needs {expected}",
            field=f"{where}.shape",
        )
    return name, array.reshape(shape)


def encode_response(model_name: str, request: InferRequest, prediction: Any) -> bytes:
    """The infer response for ``prediction``."""
    if isinstance(prediction, dict):
        outputs = [_encode_tensor(str(k), v) for k, v in prediction.items()]
    else:
        name = request.output_names[0] if request.output_names else DEFAULT_OUTPUT
        outputs = [_encode_tensor(name, prediction)]
    document: dict[str, Any] = {"model_name": model_name, "outputs": outputs}
    if request.id is not None:
        document["id"] = request.id
    return orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY, default=_tolist)


def _encode_tensor(name: str, value: Any) -> dict[str, Any]:
    array = value if isinstance(value, np.ndarray) else np.asarray(value)
    datatype = _BY_KIND.get(array.dtype.str)
    if datatype is None:
        if array.dtype.kind in "OUS":
            datatype = "BYTES"
            data: Any = [v.decode() if isinstance(v, bytes) else str(v) for v in array.ravel()]
        else:
            raise TypeError(f"output {name!r} has dtype {array.dtype}, not a v2 datatype")
    else:
        data = np.ascontiguousarray(array).ravel()
    return {"name": name, "shape": list(array.shape), "datatype": datatype, "data": data}


def _tolist(value: Any) -> Any:
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
