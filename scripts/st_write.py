"""Minimal safetensors writer and reader (F32 only): Debian has no python3-safetensors."""
import json
import struct

import torch


def save(path, tensors, metadata=None):
    """tensors: dict name -> torch tensor (converted to contiguous float32);
    metadata: dict of str -> str (stored under __metadata__)."""
    header = {}
    blobs = []
    offset = 0
    for name, t in tensors.items():
        data = t.detach().to(torch.float32).contiguous().cpu().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)  # keep the data block 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def load(path):
    """The F32 tensors of a safetensors file (dict name -> torch tensor) and its metadata."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    metadata = header.pop("__metadata__", {})
    tensors = {}
    for name, info in header.items():
        if info["dtype"] != "F32":
            raise ValueError(f"{path}: {name} is {info['dtype']}, only F32 is read")
        begin, end = info["data_offsets"]
        flat = (torch.frombuffer(bytearray(data[begin:end]), dtype=torch.float32) if end > begin
                else torch.zeros(0, dtype=torch.float32))
        tensors[name] = flat.reshape(info["shape"])
    return tensors, metadata
