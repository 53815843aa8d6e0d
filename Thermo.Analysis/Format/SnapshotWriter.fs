namespace Thermo.Analysis.Format

open System
open System.IO
open System.Runtime.InteropServices
open Apache.Arrow
open Apache.Arrow.Types

/// Writes snapshots in the tidy long schema of DESIGN.md
/// (`epoch int32, step int64, layer string, tensor string, unit int32, offset int32, value float32`).
///
/// The descriptive columns are made nearly free on disk: `layer` and `tensor` are Arrow dictionary
/// arrays (Parquet dictionary pages with run-length-encoded indices); `epoch`, `step`, `unit` and
/// `offset` use DELTA_BINARY_PACKED (constant or counting columns pack to almost nothing). Values are
/// stored PLAIN and uncompressed: float mantissas of trained weights do not compress, and compression
/// would cost write throughput. Statistics are off (nobody filters snapshots by value ranges).
/// The Arrow IPC variant has no encodings, so its files hold every column in full (8× the values):
/// the price of a format that can be memory-mapped and read without decoding.
module SnapshotWriter =
    /// Rows per Parquet row group and per Arrow record batch.
    [<Literal>]
    let RowsPerBatch = 1 <<< 20

    let private dictionaryType = DictionaryType(Int32Type.Default, StringType.Default, false)

    let private schemaFor (snapshot: Snapshot) =
        Schema.Builder()
            .Field(fun f -> f.Name("epoch").DataType(Int32Type.Default).Nullable(false) |> ignore)
            .Field(fun f -> f.Name("step").DataType(Int64Type.Default).Nullable(false) |> ignore)
            .Field(fun f -> f.Name("layer").DataType(dictionaryType).Nullable(false) |> ignore)
            .Field(fun f -> f.Name("tensor").DataType(dictionaryType).Nullable(false) |> ignore)
            .Field(fun f -> f.Name("unit").DataType(Int32Type.Default).Nullable(false) |> ignore)
            .Field(fun f -> f.Name("offset").DataType(Int32Type.Default).Nullable(false) |> ignore)
            .Field(fun f -> f.Name("value").DataType(FloatType.Default).Nullable(false) |> ignore)
            .Metadata(SnapshotSchema.VersionKey, SnapshotSchema.Version)
            .Metadata(SnapshotSchema.EpochKey, string snapshot.Epoch)
            .Metadata(SnapshotSchema.StepKey, string snapshot.Step)
            .Metadata(SnapshotSchema.TensorsKey, SnapshotSchema.encodeDirectory snapshot.Tensors)
            .Build()

    let private stringArray (values: string seq) =
        let builder = StringArray.Builder()
        for v in values do builder.Append v |> ignore
        builder.Build()

    let private int32Array (bytes: byte[]) rows = new Int32Array(new ArrowBuffer(bytes), ArrowBuffer.Empty, rows, 0, 0)

    /// Validates a snapshot before anything is written: shapes agree with value counts, names are
    /// present and printable.
    let validate (snapshot: Snapshot) =
        if snapshot.Epoch < 0 then invalidArg "snapshot" (sprintf "snapshot epoch %d is negative" snapshot.Epoch)
        for t in snapshot.Tensors do
            if String.IsNullOrWhiteSpace t.Layer || String.IsNullOrWhiteSpace t.Tensor then
                invalidArg "snapshot" "a tensor has an empty layer or tensor name"
            if t.Layer.IndexOfAny [| '\t'; '\n' |] >= 0 || t.Tensor.IndexOfAny [| '\t'; '\n' |] >= 0 then
                invalidArg "snapshot" (sprintf "tensor name %s.%s contains a tab or newline" t.Layer t.Tensor)
            let expected = Array.fold (*) 1 t.Shape
            if expected <> t.Values.Length then
                invalidArg "snapshot" (sprintf "%s.%s has shape %A (%d values) but holds %d values" t.Layer t.Tensor t.Shape expected t.Values.Length)

    /// Position of the next row to emit: tensor index and flat index inside it.
    type private Cursor = { mutable Tensor: int; mutable Position: int }

    /// Fills the column buffers of one batch of `rows` rows starting at `cursor`, advancing it.
    /// Buffers are allocated as bytes and filled through spans, so Arrow takes them without a copy.
    let private fillColumns (snapshot: Snapshot) (layerIndex: int[]) (tensorIndex: int[]) (cursor: Cursor) (rows: int) =
        let layerBytes = Array.zeroCreate<byte> (rows * 4)
        let tensorBytes = Array.zeroCreate<byte> (rows * 4)
        let unitBytes = Array.zeroCreate<byte> (rows * 4)
        let offsetBytes = Array.zeroCreate<byte> (rows * 4)
        let valueBytes = Array.zeroCreate<byte> (rows * 4)
        let layers = MemoryMarshal.Cast<byte, int>(layerBytes.AsSpan())
        let tensors = MemoryMarshal.Cast<byte, int>(tensorBytes.AsSpan())
        let units = MemoryMarshal.Cast<byte, int>(unitBytes.AsSpan())
        let offsets = MemoryMarshal.Cast<byte, int>(offsetBytes.AsSpan())
        let values = MemoryMarshal.Cast<byte, float32>(valueBytes.AsSpan())
        let mutable filled = 0
        while filled < rows do
            let t = snapshot.Tensors[cursor.Tensor]
            let take = min (rows - filled) (t.Values.Length - cursor.Position)
            t.Values.AsSpan(cursor.Position, take).CopyTo(values.Slice(filled, take))
            layers.Slice(filled, take).Fill layerIndex[cursor.Tensor]
            tensors.Slice(filled, take).Fill tensorIndex[cursor.Tensor]
            let unitSize = t.UnitSize
            let mutable unit = cursor.Position / unitSize
            let mutable offset = cursor.Position % unitSize
            for i in filled .. filled + take - 1 do
                units[i] <- unit
                offsets[i] <- offset
                offset <- offset + 1
                if offset = unitSize then
                    offset <- 0
                    unit <- unit + 1
            filled <- filled + take
            cursor.Position <- cursor.Position + take
            if cursor.Position = t.Values.Length then
                cursor.Tensor <- cursor.Tensor + 1
                cursor.Position <- 0
            while cursor.Tensor < snapshot.Tensors.Length && snapshot.Tensors[cursor.Tensor].Values.Length = 0 do
                cursor.Tensor <- cursor.Tensor + 1
        layerBytes, tensorBytes, unitBytes, offsetBytes, valueBytes

    /// Builds the record batches of a snapshot, each at most `RowsPerBatch` rows, sharing one
    /// dictionary of layer names and one of tensor names (as Arrow IPC files require). Batches are
    /// built lazily, so at most one batch of columns is alive beside the snapshot.
    let recordBatches (snapshot: Snapshot) : Schema * seq<RecordBatch> =
        validate snapshot
        let schema = schemaFor snapshot
        let layerNames = snapshot.Tensors |> Array.map (fun t -> t.Layer) |> Array.distinct
        let tensorNames = snapshot.Tensors |> Array.map (fun t -> t.Tensor) |> Array.distinct
        let layerDictionary = stringArray layerNames
        let tensorDictionary = stringArray tensorNames
        let layerIndex = snapshot.Tensors |> Array.map (fun t -> Array.IndexOf(layerNames, t.Layer))
        let tensorIndex = snapshot.Tensors |> Array.map (fun t -> Array.IndexOf(tensorNames, t.Tensor))
        let totalRows = snapshot.Tensors |> Array.sumBy (fun t -> int64 t.Values.Length)
        // epoch and step are the same in every row: one buffer of each serves every batch.
        let constantRows = int (min (int64 RowsPerBatch) totalRows)
        let epochBytes = Array.zeroCreate<byte> (constantRows * 4)
        let stepBytes = Array.zeroCreate<byte> (constantRows * 8)
        MemoryMarshal.Cast<byte, int>(epochBytes.AsSpan()).Fill snapshot.Epoch
        MemoryMarshal.Cast<byte, int64>(stepBytes.AsSpan()).Fill snapshot.Step
        let batches =
            seq {
                let cursor = { Tensor = 0; Position = 0 }
                while cursor.Tensor < snapshot.Tensors.Length && snapshot.Tensors[cursor.Tensor].Values.Length = 0 do
                    cursor.Tensor <- cursor.Tensor + 1
                let mutable written = 0L
                while written < totalRows do
                    let rows = int (min (int64 RowsPerBatch) (totalRows - written))
                    let layers, tensors, units, offsets, values = fillColumns snapshot layerIndex tensorIndex cursor rows
                    let columns: IArrowArray[] =
                        [| new Int32Array(new ArrowBuffer(epochBytes.AsMemory(0, rows * 4)), ArrowBuffer.Empty, rows, 0, 0)
                           new Int64Array(new ArrowBuffer(stepBytes.AsMemory(0, rows * 8)), ArrowBuffer.Empty, rows, 0, 0)
                           new DictionaryArray(dictionaryType, int32Array layers rows, layerDictionary)
                           new DictionaryArray(dictionaryType, int32Array tensors rows, tensorDictionary)
                           int32Array units rows
                           int32Array offsets rows
                           new FloatArray(new ArrowBuffer(values), ArrowBuffer.Empty, rows, 0, 0) |]
                    written <- written + int64 rows
                    yield new RecordBatch(schema, columns, rows)
            }
        schema, batches

    let private parquetProperties () =
        use builder = new ParquetSharp.WriterPropertiesBuilder()
        builder
            .CreatedBy("Thermo")
            .Compression(ParquetSharp.Compression.Uncompressed)
            .MaxRowGroupLength(int64 RowsPerBatch)
            .DisableDictionary()
            .EnableDictionary("layer")
            .EnableDictionary("tensor")
            .Encoding("epoch", ParquetSharp.Encoding.DeltaBinaryPacked)
            .Encoding("step", ParquetSharp.Encoding.DeltaBinaryPacked)
            .Encoding("unit", ParquetSharp.Encoding.DeltaBinaryPacked)
            .Encoding("offset", ParquetSharp.Encoding.DeltaBinaryPacked)
            .DisableStatistics()
            .Build()

    /// Enumerates `batches` one ahead on the thread pool, so that filling the next batch's columns
    /// overlaps with encoding the current one (at most two batches are alive at once).
    let private prefetched (batches: RecordBatch seq) =
        seq {
            use enumerator = batches.GetEnumerator()
            let next () = Threading.Tasks.Task.Run(fun () -> if enumerator.MoveNext() then enumerator.Current else null)
            let mutable pending = next ()
            let mutable current = pending.Result
            while not (isNull current) do
                pending <- next ()
                yield current
                current <- pending.Result
        }

    let private writeParquetTo (path: string) (schema: Schema) (batches: RecordBatch seq) =
        use properties = parquetProperties ()
        use arrowProperties = (new ParquetSharp.Arrow.ArrowWriterPropertiesBuilder()).StoreSchema().Build()
        use writer = new ParquetSharp.Arrow.FileWriter(path, schema, properties, arrowProperties)
        // Batches are not disposed here: the exporter releases its reference to their buffers when the
        // native writer is done with them (disposing first crashes the release callback).
        for batch in prefetched batches do
            writer.WriteRecordBatch(batch, int64 RowsPerBatch)
        writer.Close()

    let private writeArrowTo (path: string) (schema: Schema) (batches: RecordBatch seq) =
        use stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 <<< 20)
        use writer = new Apache.Arrow.Ipc.ArrowFileWriter(stream, schema)
        for batch in prefetched batches do
            use batch = batch
            writer.WriteRecordBatch batch
        writer.WriteEnd()

    /// Writes `snapshot` to `path` in `format`, atomically (temporary name, then rename).
    let write (format: SnapshotFileFormat) (path: string) (snapshot: Snapshot) =
        let schema, batches = recordBatches snapshot
        AtomicFile.write path (fun temp ->
            match format with
            | SnapshotFileFormat.Arrow -> writeArrowTo temp schema batches
            | _ -> writeParquetTo temp schema batches)
