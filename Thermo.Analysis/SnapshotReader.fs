namespace Thermo.Analysis

open System
open System.IO
open System.Collections.Generic
open Apache.Arrow

/// Reads snapshot files written by `SnapshotWriter`, one snapshot at a time.
///
/// Only the `value` column is decoded; the tensor directory in the file's metadata says which rows
/// belong to which tensor (the writer emits rows in directory order), so the descriptive columns
/// cost nothing to read. Any file that is not a complete Thermo snapshot of this schema version
/// raises `ArtifactException` naming the file and the fault.
module SnapshotReader =
    let private fail fmt = Printf.kprintf (fun message -> raise (ArtifactException message)) fmt

    let private checkMetadata (path: string) (metadata: IReadOnlyDictionary<string, string>) =
        let get key = match metadata.TryGetValue key with | true, v -> Some v | _ -> None
        match get SnapshotSchema.VersionKey with
        | None -> fail "%s: no %s metadata; not a Thermo snapshot file" path SnapshotSchema.VersionKey
        | Some v when v <> SnapshotSchema.Version ->
            fail "%s: snapshot schema version %s, but this Thermo reads version %s" path v SnapshotSchema.Version
        | Some _ -> ()
        let directory =
            match get SnapshotSchema.TensorsKey |> Option.bind SnapshotSchema.decodeDirectory with
            | Some d -> d
            | None -> fail "%s: missing or malformed %s metadata" path SnapshotSchema.TensorsKey
        let parseInt key parse =
            match get key |> Option.bind (fun s -> match parse s with | true, v -> Some v | _ -> None) with
            | Some v -> v
            | None -> fail "%s: missing or malformed %s metadata" path key
        let epoch = parseInt SnapshotSchema.EpochKey Int32.TryParse
        let step = parseInt SnapshotSchema.StepKey Int64.TryParse
        epoch, step, directory

    let private toSnapshot (path: string) (epoch, step, directory: (string * string * int[])[]) (values: float32[]) =
        let expected = directory |> Array.sumBy (fun (_, _, shape) -> int64 (Array.fold (*) 1 shape))
        if expected <> int64 values.Length then
            fail "%s: holds %d values but its tensor directory lists %d (truncated or corrupt)" path values.Length expected
        let mutable at = 0
        let tensors =
            directory
            |> Array.map (fun (layer, tensor, shape) ->
                let n = Array.fold (*) 1 shape
                let slice = Array.sub values at n
                at <- at + n
                { Layer = layer; Tensor = tensor; Shape = shape; Values = slice })
        { Epoch = epoch; Step = step; Tensors = tensors }

    let private appendValues (path: string) (target: ResizeArray<float32>) (column: IArrowArray) =
        match column with
        | :? FloatArray as floats when floats.NullCount = 0 -> target.AddRange(floats.Values.ToArray())
        | :? FloatArray -> fail "%s: the value column holds nulls" path
        | other -> fail "%s: the value column is %s, expected float32" path (other.Data.DataType.Name)

    let private valueColumnIndex (path: string) (schema: Schema) =
        let index = schema.GetFieldIndex "value"
        if index < 0 then fail "%s: no 'value' column" path
        index

    let private readParquet (path: string) =
        use reader =
            try new ParquetSharp.Arrow.FileReader(path)
            with e -> fail "%s: not a readable Parquet file (%s)" path e.Message
        let header = checkMetadata path reader.ParquetReader.FileMetaData.KeyValueMetadata
        let column = valueColumnIndex path reader.Schema
        let values = ResizeArray<float32>()
        try
            use stream = reader.GetRecordBatchReader(null, [| column |])
            let mutable batch = stream.ReadNextRecordBatchAsync().AsTask().Result
            while not (isNull batch) do
                use b = batch
                appendValues path values (b.Column 0)
                batch <- stream.ReadNextRecordBatchAsync().AsTask().Result
        with
        | ArtifactException _ -> reraise ()
        | e -> fail "%s: truncated or corrupt Parquet data (%s)" path (e.GetBaseException().Message)
        toSnapshot path header (values.ToArray())

    let private readArrow (path: string) =
        try
            use stream = File.OpenRead path
            use reader = new Apache.Arrow.Ipc.ArrowFileReader(stream)
            let schema = reader.Schema
            let header = checkMetadata path schema.Metadata
            let column = valueColumnIndex path schema
            let values = ResizeArray<float32>()
            let mutable batch = reader.ReadNextRecordBatch()
            while not (isNull batch) do
                use b = batch
                appendValues path values (b.Column column)
                batch <- reader.ReadNextRecordBatch()
            toSnapshot path header (values.ToArray())
        with
        | ArtifactException _ -> reraise ()
        | e -> fail "%s: not a readable Arrow IPC file (%s)" path (e.GetBaseException().Message)

    /// Reads one snapshot file (`.parquet` or `.arrow`, chosen by extension).
    [<CompiledName("ReadFile")>]
    let readFile (path: string) : Snapshot =
        if not (File.Exists path) then fail "%s: snapshot file does not exist" path
        match Path.GetExtension(path).ToLowerInvariant() with
        | ".arrow" -> readArrow path
        | ".parquet" -> readParquet path
        | other -> fail "%s: unknown snapshot extension '%s' (expected .parquet or .arrow)" path other

    /// The per-epoch snapshot files of a run directory as (epoch, path), sorted by epoch.
    /// Temporary files of an interrupted write are ignored; both formats may appear.
    [<CompiledName("ListEpochFiles")>]
    let listEpochFiles (runDirectory: string) : (int * string)[] =
        let dir = Path.Combine(runDirectory, "snapshots")
        if not (Directory.Exists dir) then fail "%s: no snapshots directory" runDirectory
        Directory.EnumerateFiles dir
        |> Seq.choose (fun path ->
            let name = Path.GetFileName path
            let m = Text.RegularExpressions.Regex.Match(name, @"^epoch=(\d+)\.(parquet|arrow)$")
            if m.Success then Some(int m.Groups[1].Value, path) else None)
        |> Seq.sortBy fst
        |> Seq.toArray

    /// Streams the per-epoch snapshots of a run directory in epoch order, reading each file only
    /// when it is reached, so memory holds one snapshot at a time.
    [<CompiledName("ReadRun")>]
    let readRun (runDirectory: string) : seq<Snapshot> =
        let files = listEpochFiles runDirectory
        seq { for _, path in files -> readFile path }
