namespace Thermo.Analysis.Format

open System
open System.IO
open System.Collections.Generic
open Apache.Arrow
open Thermo.Analysis

/// Reads snapshot files written by `SnapshotWriter`, one snapshot at a time.
///
/// Only the `value` column is decoded; the tensor directory in the file's metadata says which rows
/// belong to which tensor (the writer emits rows in directory order), so the descriptive columns
/// cost nothing to read. Any file that is not a complete Thermo snapshot of this schema version
/// raises `ArtifactException` naming the file and the fault.
module SnapshotReader =
    /// A snapshot's tensor directory: (layer, tensor, shape) in row order.
    type TensorDirectory = (string * string * int[])[]

    let private failAt path fmt = Errors.artifactAt path fmt

    let private checkMetadata (path: string) (metadata: IReadOnlyDictionary<string, string>) =
        let get key = match metadata.TryGetValue key with | true, v -> Some v | _ -> None
        match get SnapshotSchema.VersionKey with
        | None -> failAt path "no %s metadata; not a Thermo snapshot file" SnapshotSchema.VersionKey
        | Some v when v <> SnapshotSchema.Version ->
            failAt path "snapshot schema version %s, but this Thermo reads version %s" v SnapshotSchema.Version
        | Some _ -> ()
        let directory =
            match get SnapshotSchema.TensorsKey |> Option.bind SnapshotSchema.decodeDirectory with
            | Some d -> d
            | None -> failAt path "missing or malformed %s metadata" SnapshotSchema.TensorsKey
        let parseInt key parse =
            match get key |> Option.bind (fun s -> match parse s with | true, v -> Some v | _ -> None) with
            | Some v -> v
            | None -> failAt path "missing or malformed %s metadata" key
        let epoch = parseInt SnapshotSchema.EpochKey Int32.TryParse
        let step = parseInt SnapshotSchema.StepKey Int64.TryParse
        epoch, step, directory

    /// Destination of a snapshot's values: arrays filled one after another in row order (one per
    /// tensor, or one flat buffer). `streamValues` has already checked the count against the directory.
    type private ValueCopier(arrays: float32[][]) =
        let mutable target = 0
        let mutable position = 0
        member _.Append(values: ReadOnlySpan<float32>) =
            let mutable rest = values
            while rest.Length > 0 do
                while arrays[target].Length = position do
                    target <- target + 1
                    position <- 0
                let take = min rest.Length (arrays[target].Length - position)
                rest.Slice(0, take).CopyTo(arrays[target].AsSpan(position, take))
                position <- position + take
                rest <- rest.Slice take

    let private tensorSize (_, _, shape: int[]) = Array.fold (*) 1 shape

    let private valueColumnIndex (path: string) (schema: Schema) =
        let index = schema.GetFieldIndex "value"
        if index < 0 then failAt path "no 'value' column"
        index

    /// Streams a Parquet snapshot's value column straight into caller-owned chunks: Parquet's
    /// column reader decodes into the chunk (no intermediate Arrow arrays), reading the file through
    /// a small buffered stream, so native and managed memory stay O(chunk) whatever the file's size.
    let private streamParquet (path: string) (header: int -> int64 -> TensorDirectory -> unit) (nextChunk: unit -> float32[]) (filled: float32[] -> int -> unit) =
        use properties = ParquetSharp.ReaderProperties.GetDefaultReaderProperties()
        properties.EnableBufferedStream()
        properties.BufferSize <- 1L <<< 18
        use reader =
            try new ParquetSharp.ParquetFileReader(path, properties)
            with e -> failAt path "not a readable Parquet file (%s)" e.Message
        use metadata = reader.FileMetaData
        let epoch, step, directory = checkMetadata path metadata.KeyValueMetadata
        let expected = directory |> Array.sumBy (tensorSize >> int64)
        let schema = metadata.Schema
        let column =
            match Seq.init schema.NumColumns id |> Seq.tryFind (fun i -> schema.Column(i).Name = "value") with
            | Some i -> i
            | None -> failAt path "no 'value' column"
        header epoch step directory
        let mutable received = 0L
        try
            for rowGroup in 0 .. metadata.NumRowGroups - 1 do
                use group = reader.RowGroup rowGroup
                use columnReader = group.Column column
                if columnReader.ColumnDescriptor.PhysicalType <> ParquetSharp.PhysicalType.Float then
                    failAt path "the value column is %O, expected float32" columnReader.ColumnDescriptor.PhysicalType
                use values = columnReader.LogicalReader<float32>(1024)
                while values.HasNext do
                    let chunk = nextChunk ()
                    let count = values.ReadBatch(chunk.AsSpan())
                    received <- received + int64 count
                    if received > expected then
                        failAt path "holds more than the %d values its tensor directory lists (corrupt)" expected
                    filled chunk count
        with
        | ArtifactException _ -> reraise ()
        | :? OperationCanceledException -> reraise () // the caller stopped reading
        | :? InvalidCastException -> failAt path "the value column is not float32 without nulls"
        | e -> failAt path "truncated or corrupt Parquet data (%s)" (e.GetBaseException().Message)
        if received <> expected then
            failAt path "holds %d values but its tensor directory lists %d (truncated or corrupt)" received expected

    /// As `streamParquet`, for an Arrow IPC snapshot (one record batch, at most 2^20 rows, at a time).
    let private streamArrow (path: string) (header: int -> int64 -> TensorDirectory -> unit) (nextChunk: unit -> float32[]) (filled: float32[] -> int -> unit) =
        let mutable received = 0L
        let mutable expected = 0L
        try
            use stream = File.OpenRead path
            use reader = new Apache.Arrow.Ipc.ArrowFileReader(stream)
            let schema = reader.Schema
            let epoch, step, directory = checkMetadata path schema.Metadata
            let column = valueColumnIndex path schema
            expected <- directory |> Array.sumBy (tensorSize >> int64)
            header epoch step directory
            let mutable batch = reader.ReadNextRecordBatch()
            while not (isNull batch) do
                use b = batch
                match b.Column column with
                | :? FloatArray as floats when floats.NullCount = 0 ->
                    let values = floats.Values
                    received <- received + int64 values.Length
                    if received > expected then
                        failAt path "holds more than the %d values its tensor directory lists (corrupt)" expected
                    let mutable at = 0
                    while at < values.Length do
                        let chunk = nextChunk ()
                        let count = min chunk.Length (values.Length - at)
                        values.Slice(at, count).CopyTo(chunk.AsSpan())
                        filled chunk count
                        at <- at + count
                | :? FloatArray -> failAt path "the value column holds nulls"
                | other -> failAt path "the value column is %s, expected float32" (other.Data.DataType.Name)
                batch <- reader.ReadNextRecordBatch()
        with
        | ArtifactException _ -> reraise ()
        | :? OperationCanceledException -> reraise () // the caller stopped reading
        | e -> failAt path "not a readable Arrow IPC file (%s)" (e.GetBaseException().Message)
        if received <> expected then
            failAt path "holds %d values but its tensor directory lists %d (truncated or corrupt)" received expected

    /// Streams one snapshot file's values, in directory (row) order, into chunks the caller supplies:
    /// `header epoch step directory` is called before any value, then `nextChunk ()` gives an array
    /// to fill and `filled chunk count` hands it back with `count` values. Memory is O(chunk length)
    /// for Parquet, O(one record batch) for Arrow IPC, whatever the file's size. Raises
    /// `ArtifactException` naming the file for anything that is not a complete snapshot.
    [<CompiledName("StreamValues")>]
    let streamValues (path: string) (header: int -> int64 -> TensorDirectory -> unit) (nextChunk: unit -> float32[]) (filled: float32[] -> int -> unit) : unit =
        if not (File.Exists path) then failAt path "snapshot file does not exist"
        match Path.GetExtension(path).ToLowerInvariant() with
        | ".arrow" -> streamArrow path header nextChunk filled
        | ".parquet" -> streamParquet path header nextChunk filled
        | other -> failAt path "unknown snapshot extension '%s' (expected .parquet or .arrow)" other

    /// Epoch, step and tensor directory of a snapshot file, from its metadata alone.
    [<CompiledName("ReadHeader")>]
    let readHeader (path: string) : int * int64 * TensorDirectory =
        if not (File.Exists path) then failAt path "snapshot file does not exist"
        match Path.GetExtension(path).ToLowerInvariant() with
        | ".parquet" ->
            use reader =
                try new ParquetSharp.ParquetFileReader(path)
                with e -> failAt path "not a readable Parquet file (%s)" e.Message
            use metadata = reader.FileMetaData
            checkMetadata path metadata.KeyValueMetadata
        | ".arrow" ->
            try
                use stream = File.OpenRead path
                use reader = new Apache.Arrow.Ipc.ArrowFileReader(stream)
                checkMetadata path reader.Schema.Metadata
            with
            | ArtifactException _ -> reraise ()
            | e -> failAt path "not a readable Arrow IPC file (%s)" (e.GetBaseException().Message)
        | other -> failAt path "unknown snapshot extension '%s' (expected .parquet or .arrow)" other

    /// Reads a whole snapshot through `streamValues` into the arrays `destination` makes from its
    /// tensor directory; returns epoch, step, directory and those arrays.
    let private readWith (path: string) (destination: TensorDirectory -> float32[][]) =
        let result = ref None
        let copier = ref None
        let chunk = Array.zeroCreate<float32> (1 <<< 16)
        streamValues path
            (fun epoch step directory ->
                let arrays = destination directory
                result.Value <- Some(epoch, step, directory, arrays)
                copier.Value <- Some(ValueCopier arrays))
            (fun () -> chunk)
            (fun filled count -> copier.Value.Value.Append(ReadOnlySpan(filled, 0, count)))
        result.Value.Value

    /// Reads one snapshot file (`.parquet` or `.arrow`, chosen by extension).
    [<CompiledName("ReadFile")>]
    let readFile (path: string) : Snapshot =
        let epoch, step, directory, arrays = readWith path (Array.map (fun t -> Array.zeroCreate<float32> (tensorSize t)))
        { Epoch = epoch
          Step = step
          Tensors = Array.map2 (fun (layer, tensor, shape) values -> { Layer = layer; Tensor = tensor; Shape = shape; Values = values }) directory arrays }

    /// Reads every value of a snapshot, in directory order, into `buffer` (whose length must equal
    /// the file's value count), so a caller streaming many files reuses one buffer and allocates
    /// nothing per file. Returns epoch, step and the tensor directory.
    [<CompiledName("ReadFlatInto")>]
    let readFlatInto (path: string) (buffer: float32[]) : int * int64 * (string * string * int[])[] =
        let epoch, step, directory, _ =
            readWith path (fun directory ->
                let total = Array.sumBy tensorSize directory
                if total <> buffer.Length then
                    failAt path "holds %d values, but the buffer holds %d (the model's tensors changed?)" total buffer.Length
                [| buffer |])
        epoch, step, directory
