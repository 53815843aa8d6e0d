namespace Thermo.Analysis.Checkpoints

open System

/// How a checkpoint stores a tensor's elements. Every path converts them to float32, the precision
/// of Thermo's snapshot schema.
type StoredDType =
    | Float32 = 0
    | Float16 = 1
    | BFloat16 = 2
    | Float64 = 3

/// Where a tensor's elements are: a file, or a stored (uncompressed) entry of a zip file, and the
/// byte offset of its first element there, with element strides (row-major contiguous in every
/// safetensors file; a torch tensor may be a strided view of its storage).
type TensorBytes =
    { File: string
      /// The zip entry holding the storage of a torch zip checkpoint; null for a safetensors file.
      Entry: string
      /// Byte offset of the first element in the file or entry.
      Offset: int64
      /// Element strides, one per dimension of the stored shape.
      Strides: int64[] }

/// A floating tensor of a checkpoint that is analysed, located but not read.
type CheckpointTensor =
    { /// Thermo's layer: the key without a trailing `.weight` or `.bias`; a key with neither suffix
      /// (`pos_embed`, `attn.in_proj_weight`) is a layer of its own, named by its whole key.
      Layer: string
      /// `weight` or `bias` (`weight` for a key with neither suffix).
      Tensor: string
      /// The state-dict key with wrapper prefixes (`module.`, `_orig_mod.`, Lightning's `model.`) stripped.
      Key: string
      /// The key as the file stores it.
      StoredKey: string
      /// The shape the analysis sees: the stored shape, or its transpose for a 2-D tensor read with
      /// its units along dim 1 (a layer stored (in, out), e.g. Hugging Face GPT-2's Conv1D).
      Shape: int[]
      DType: StoredDType
      /// True when the tensor is streamed transposed (units along the stored dim 1).
      Transposed: bool
      Bytes: TensorBytes }

/// A tensor of a checkpoint that is not analysed, and why (a buffer such as `running_mean`, an
/// integer or boolean tensor, a key the user excluded by pattern).
type DroppedTensor = { StoredKey: string; Reason: string }

/// What one checkpoint holds, read from its headers (or pickle) without reading any value.
type CheckpointContents =
    { /// The checkpoint as given: a file, a sharded index (`*.index.json`), or a Hugging Face
      /// `checkpoint-N/` directory.
      Path: string
      /// `torch-zip`, `safetensors`, `safetensors-sharded` or `torch-sharded`.
      Format: string
      /// The analysed tensors, in the state dict's order.
      Tensors: CheckpointTensor[]
      Dropped: DroppedTensor[]
      /// Lightning's `epoch` and `global_step`, where the file holds them.
      Epoch: int option
      GlobalStep: int64 option }

/// Settings of reading a checkpoint.
type CheckpointReadOptions =
    { /// Glob patterns (`*` and `?`) over keys (after prefix stripping) whose tensors are not analysed.
      Exclude: string[]
      /// Glob patterns over layers whose 2-D tensors are stored (in, out): their units are along dim 1.
      UnitsAlongDim1: string[] }

    static member Default = { Exclude = [||]; UnitsAlongDim1 = [||] }
