namespace Thermo.Analysis.Format

/// The values of one named tensor of a model at one snapshot, flattened in row-major order.
type TensorSnapshot =
    { /// Module name, stable across the project (`conv1`, `fc`, …).
      Layer: string
      /// Tensor name inside the module: `weight`, `bias`, or a buffer name such as `running_mean`.
      Tensor: string
      /// Full shape; dimension 0 indexes the output units (conv filters, linear rows).
      Shape: int[]
      /// Row-major values; length is the product of `Shape`.
      Values: float32[] }

    /// Number of output units: the length of dimension 0 (1 for a scalar).
    member t.Units = if t.Shape.Length = 0 then 1 else t.Shape[0]

    /// Values per unit: the product of the dimensions after the first.
    member t.UnitSize = if t.Shape.Length = 0 then 1 else Array.fold (*) 1 t.Shape[1..]

/// Every parameter and buffer of a model at one instant of training.
type Snapshot =
    { /// Snapshot index: 0 is the initialisation, e is the end of epoch e (or a step inside epoch e).
      Epoch: int
      /// Global optimiser step count at this instant.
      Step: int64
      /// Tensors in the model's registration order.
      Tensors: TensorSnapshot[] }

/// On-disk container of a snapshot.
type SnapshotFileFormat =
    /// Apache Parquet (default): compact, read by every SQL engine.
    | Parquet = 0
    /// Apache Arrow IPC file: same schema, faster to write and memory-mappable.
    | Arrow = 1

/// Constants of the tidy snapshot schema shared by writer, reader and the tests.
module SnapshotSchema =
    /// Version of the snapshot schema, stored in every file's key-value metadata.
    [<Literal>]
    let Version = "1"

    /// Metadata key holding `Version`.
    [<Literal>]
    let VersionKey = "thermo.schema_version"

    /// Metadata key holding the tensor directory (`layer<TAB>tensor<TAB>d0,d1,…` per line, in row order).
    [<Literal>]
    let TensorsKey = "thermo.tensors"

    /// Metadata key holding the snapshot index.
    [<Literal>]
    let EpochKey = "thermo.epoch"

    /// Metadata key holding the global step.
    [<Literal>]
    let StepKey = "thermo.step"

    /// Column names in file order.
    let Columns = [| "epoch"; "step"; "layer"; "tensor"; "unit"; "offset"; "value" |]

    /// File extension for a format, with the dot.
    let extension (format: SnapshotFileFormat) =
        match format with
        | SnapshotFileFormat.Arrow -> ".arrow"
        | _ -> ".parquet"

    /// File name of the per-epoch snapshot `e`, e.g. `epoch=00007.parquet`.
    let fileName (format: SnapshotFileFormat) (epoch: int) = sprintf "epoch=%05d%s" epoch (extension format)

    /// File name of a per-step snapshot inside epoch `e`, e.g. `epoch=00007-step=000001234.parquet`.
    let private epochName = System.Text.RegularExpressions.Regex(@"^epoch=(\d+)\.(parquet|arrow)$")
    let private stepName = System.Text.RegularExpressions.Regex(@"^epoch=(\d+)-step=(\d+)\.(parquet|arrow)$")

    /// The epoch of a per-epoch snapshot file name written by `fileName` (either format); None for any
    /// other name (a temporary file of an interrupted write, a per-step file, a foreign file).
    let tryEpochOfFileName (name: string) : int option =
        let m = epochName.Match name
        if m.Success then Some(int m.Groups[1].Value) else None

    /// The (epoch, global step) of a per-step snapshot file name written by `stepFileName`; None otherwise.
    let tryStepOfFileName (name: string) : (int * int64) option =
        let m = stepName.Match name
        if m.Success then Some(int m.Groups[1].Value, int64 m.Groups[2].Value) else None

    let stepFileName (format: SnapshotFileFormat) (epoch: int) (step: int64) =
        sprintf "epoch=%05d-step=%09d%s" epoch step (extension format)

    /// Encodes the tensor directory stored under `TensorsKey`.
    let encodeDirectory (tensors: TensorSnapshot seq) =
        tensors
        |> Seq.map (fun t -> sprintf "%s\t%s\t%s" t.Layer t.Tensor (t.Shape |> Array.map string |> String.concat ","))
        |> String.concat "\n"

    /// Decodes the tensor directory into (layer, tensor, shape) triples; `None` when malformed.
    let decodeDirectory (text: string) : (string * string * int[])[] option =
        if System.String.IsNullOrEmpty text then Some [||] else
        let parse (line: string) =
            match line.Split '\t' with
            | [| layer; tensor; dims |] ->
                let shape =
                    if dims = "" then Some [||]
                    else
                        let parts = dims.Split ','
                        let parsed = parts |> Array.choose (fun d -> match System.Int32.TryParse d with | true, v when v >= 0 -> Some v | _ -> None)
                        if parsed.Length = parts.Length then Some parsed else None
                shape |> Option.map (fun s -> layer, tensor, s)
            | _ -> None
        let entries = text.Split '\n' |> Array.map parse
        if entries |> Array.forall Option.isSome then Some(entries |> Array.map Option.get) else None
