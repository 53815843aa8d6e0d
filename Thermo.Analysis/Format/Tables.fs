namespace Thermo.Analysis.Format

open System
open System.Runtime.InteropServices
open Apache.Arrow
open Apache.Arrow.Types
open Thermo.Analysis

/// One column of a small tidy table.
type Column =
    | Int32Column of name: string * values: int[]
    | Int64Column of name: string * values: int64[]
    | Float32Column of name: string * values: float32[]
    | Float64Column of name: string * values: float[]
    | StringColumn of name: string * values: string[]

    /// Column name.
    member c.Name =
        match c with
        | Int32Column(n, _) | Int64Column(n, _) | Float32Column(n, _) | Float64Column(n, _) | StringColumn(n, _) -> n

    /// Number of rows.
    member c.Length =
        match c with
        | Int32Column(_, v) -> v.Length
        | Int64Column(_, v) -> v.Length
        | Float32Column(_, v) -> v.Length
        | Float64Column(_, v) -> v.Length
        | StringColumn(_, v) -> v.Length

    // The cases under C# names, so C# builds a column as `Column.Doubles(name, values)` (the names
    // of `Table.GetDoubles` and its kin).

    /// An int32 column (`Int32Column`).
    static member Ints(name: string, values: int[]) : Column = Int32Column(name, values)

    /// An int64 column (`Int64Column`).
    static member Longs(name: string, values: int64[]) : Column = Int64Column(name, values)

    /// A float32 column (`Float32Column`).
    static member Floats(name: string, values: float32[]) : Column = Float32Column(name, values)

    /// A float64 column (`Float64Column`).
    static member Doubles(name: string, values: float[]) : Column = Float64Column(name, values)

    /// A string column (`StringColumn`).
    static member Strings(name: string, values: string[]) : Column = StringColumn(name, values)

/// Small tidy tables (metrics, gradient noise, analysis results) as Parquet files with the
/// table's schema version in key-value metadata.
module Tables =
    let private failAt path fmt = Errors.artifactAt path fmt

    /// Metadata key naming the kind of table (e.g. `metrics`), checked on read.
    [<Literal>]
    let TableKey = "thermo.table"

    let private bytesOf<'T when 'T: unmanaged and 'T: struct and 'T: (new: unit -> 'T) and 'T :> ValueType> (values: 'T[]) (start: int) (count: int) =
        MemoryMarshal.AsBytes(ReadOnlySpan(values, start, count)).ToArray()

    let private dictionaryType = DictionaryType(Int32Type.Default, StringType.Default, false)

    /// Rows per record batch (and Parquet row group): bounds the Arrow copies and the native
    /// writer's buffers, so writing a long table costs little beyond the table itself.
    [<Literal>]
    let RowsPerBatch = 65536

    /// A function making a column's slice [start, start+count) as an Arrow array (of `arrowType`).
    /// Strings are dictionary-encoded, the codes computed once per column: the tables repeat a handful
    /// of layer names and labels over many rows.
    let private toArrow (column: Column) : int -> int -> IArrowArray =
        match column with
        | Int32Column(_, v) -> fun start count -> new Int32Array(new ArrowBuffer(bytesOf v start count), ArrowBuffer.Empty, count, 0, 0)
        | Int64Column(_, v) -> fun start count -> new Int64Array(new ArrowBuffer(bytesOf v start count), ArrowBuffer.Empty, count, 0, 0)
        | Float32Column(_, v) -> fun start count -> new FloatArray(new ArrowBuffer(bytesOf v start count), ArrowBuffer.Empty, count, 0, 0)
        | Float64Column(_, v) -> fun start count -> new DoubleArray(new ArrowBuffer(bytesOf v start count), ArrowBuffer.Empty, count, 0, 0)
        | StringColumn(_, v) ->
            let distinct = Collections.Generic.Dictionary<string, int>()
            let codes = v |> Array.map (fun s -> match distinct.TryGetValue s with | true, c -> c | _ -> (let c = distinct.Count in distinct[s] <- c; c))
            let words = distinct |> Seq.sortBy (fun kv -> kv.Value) |> Seq.map (fun kv -> kv.Key) |> Seq.toArray
            fun start count ->
                let indices = new Int32Array(new ArrowBuffer(bytesOf codes start count), ArrowBuffer.Empty, count, 0, 0)
                // A dictionary array per batch, so no Arrow array is exported (and released) by two batches.
                let dictionary = StringArray.Builder()
                for w in words do dictionary.Append w |> ignore
                new DictionaryArray(dictionaryType, indices, dictionary.Build())

    let private arrowType (column: Column) : IArrowType =
        match column with
        | Int32Column _ -> Int32Type.Default
        | Int64Column _ -> Int64Type.Default
        | Float32Column _ -> FloatType.Default
        | Float64Column _ -> DoubleType.Default
        | StringColumn _ -> dictionaryType

    let private checkLengths (columns: Column list) =
        let rows = match columns with | [] -> 0 | c :: _ -> c.Length
        for c in columns do
            if c.Length <> rows then invalidArg "columns" (sprintf "column %s has %d rows, expected %d" c.Name c.Length rows)
        rows

    /// Writes record batches (Arrow arrays and their row count) with the schema of `columns`,
    /// atomically, one Parquet row group per batch.
    let private writeArrays (path: string) (table: string) (columns: Column list) (batches: seq<IArrowArray list * int>) =
        let schema =
            let builder = Schema.Builder()
            for c in columns do builder.Field(fun f -> f.Name(c.Name).DataType(arrowType c).Nullable(false) |> ignore) |> ignore
            builder.Metadata(SnapshotSchema.VersionKey, SnapshotSchema.Version).Metadata(TableKey, table).Build()
        AtomicFile.write path (fun temp ->
            // Dictionary pages only for the string columns: for numbers they cost a hash table per
            // column and rarely pay (a temperature column has as many values as rows).
            use builder = (new ParquetSharp.WriterPropertiesBuilder()).CreatedBy("Thermo").Compression(ParquetSharp.Compression.Snappy).DisableDictionary()
            for c in columns do
                match c with
                | StringColumn(name, _) -> builder.EnableDictionary(name) |> ignore
                | _ -> ()
            use properties = builder.Build()
            use arrowProperties = (new ParquetSharp.Arrow.ArrowWriterPropertiesBuilder()).StoreSchema().Build()
            use writer = new ParquetSharp.Arrow.FileWriter(temp, schema, properties, arrowProperties)
            for arrays, rows in batches do
                // Not disposed: the exporter releases its reference to the buffers when the native
                // writer is done with them (disposing first crashes the release callback).
                let batch = new RecordBatch(schema, arrays, rows)
                writer.WriteRecordBatch(batch, int64 (max 1 rows))
            writer.Close())

    /// Writes a table given as batches of columns — the same names and types in each batch, at most
    /// 65,536 rows each, one Parquet row group per batch — atomically, with the schema version and the
    /// table's kind in the key-value metadata. The batches are consumed one at a time, so a long table
    /// built lazily (`seq { … }`) never exists whole in memory.
    [<CompiledName("WriteBatches")>]
    let writeBatches (path: string) (table: string) (batches: seq<Column list>) =
        use enumerator = batches.GetEnumerator()
        if not (enumerator.MoveNext()) then invalidArg "batches" "a table needs at least one batch (it may be empty)"
        let first = enumerator.Current
        let names = first |> List.map (fun c -> c.Name)
        let arrays (columns: Column list) =
            let rows = checkLengths columns
            if rows > RowsPerBatch then invalidArg "batches" (sprintf "a batch has %d rows, more than %d" rows RowsPerBatch)
            if columns |> List.map (fun c -> c.Name) <> names then invalidArg "batches" "every batch must have the same columns"
            columns |> List.map (fun c -> toArrow c 0 rows), rows
        writeArrays path table first (seq {
            yield arrays first
            while enumerator.MoveNext() do yield arrays enumerator.Current })

    /// Writes `columns` (equal lengths) as one Parquet file (see `writeBatches`), slicing each column
    /// straight into its Arrow batches.
    [<CompiledName("Write")>]
    let write (path: string) (table: string) (columns: Column list) =
        let rows = checkLengths columns
        let makers = columns |> List.map toArrow
        writeArrays path table columns (seq {
            let mutable start = 0
            // An empty table still gets one (empty) batch, so its schema and row group are written.
            while start < rows || (rows = 0 && start = 0) do
                let count = min RowsPerBatch (rows - start)
                yield makers |> List.map (fun make -> make start count), count
                start <- start + max 1 count })

    let private fromArrow (path: string) (field: Field) (chunks: IArrowArray seq) : Column =
        let collect (values: IArrowArray -> 'T[]) = chunks |> Seq.collect values |> Array.ofSeq
        let name = field.Name
        match field.DataType.TypeId with
        | ArrowTypeId.Int32 -> Int32Column(name, collect (fun a -> (a :?> Int32Array).Values.ToArray()))
        | ArrowTypeId.Int64 -> Int64Column(name, collect (fun a -> (a :?> Int64Array).Values.ToArray()))
        | ArrowTypeId.Float -> Float32Column(name, collect (fun a -> (a :?> FloatArray).Values.ToArray()))
        | ArrowTypeId.Double -> Float64Column(name, collect (fun a -> (a :?> DoubleArray).Values.ToArray()))
        | ArrowTypeId.String -> StringColumn(name, collect (fun a -> let v = a :?> StringArray in Array.init v.Length (fun i -> v.GetString i)))
        | ArrowTypeId.LargeString -> StringColumn(name, collect (fun a -> let v = a :?> LargeStringArray in Array.init v.Length (fun i -> v.GetString i)))
        | ArrowTypeId.Dictionary ->
            StringColumn(name, collect (fun a ->
                let d = a :?> DictionaryArray
                match d.Indices, d.Dictionary with
                | (:? Int32Array as indices), (:? StringArray as dictionary) ->
                    let decoded = Array.init dictionary.Length (fun i -> dictionary.GetString i)
                    Array.init indices.Length (fun i -> decoded[indices.GetValue(i).Value])
                | _ -> failAt path "column %s is a dictionary of unsupported types" name))
        | _ -> failAt path "column %s has unsupported type %s" name field.DataType.Name

    /// Reads a Thermo table of this schema version: its kind (`expected`, when given, is checked) and columns.
    let private readTable (path: string) (expected: string option) : string * Column list =
        if not (IO.File.Exists path) then failAt path "file does not exist"
        use reader =
            try new ParquetSharp.Arrow.FileReader(path)
            with e -> failAt path "not a readable Parquet file (%s)" e.Message
        let metadata = reader.ParquetReader.FileMetaData.KeyValueMetadata
        let get key = match metadata.TryGetValue key with | true, v -> Some v | _ -> None
        let kind =
            match get SnapshotSchema.VersionKey, get TableKey, expected with
            | Some v, Some t, (None | Some _) when v = SnapshotSchema.Version && (expected.IsNone || expected = Some t) -> t
            | Some v, Some t, _ when expected.IsNone || expected = Some t -> failAt path "%s table of schema version %s; this Thermo reads version %s" t v SnapshotSchema.Version
            | _, Some t, Some table -> failAt path "a %s table, expected a %s table" t table
            | _ -> failAt path "no Thermo table metadata"
        let schema = reader.Schema
        let chunks = Array.init schema.FieldsList.Count (fun _ -> ResizeArray<IArrowArray>())
        try
            use stream = reader.GetRecordBatchReader()
            let mutable batch = stream.ReadNextRecordBatchAsync().AsTask().Result
            while not (isNull batch) do
                for i in 0 .. chunks.Length - 1 do chunks[i].Add(batch.Column i)
                batch <- stream.ReadNextRecordBatchAsync().AsTask().Result
        with e -> failAt path "truncated or corrupt Parquet data (%s)" (e.GetBaseException().Message)
        kind, [ for i in 0 .. chunks.Length - 1 -> fromArrow path schema.FieldsList[i] chunks[i] ]

    /// Reads a table written by `write`, checking it is of kind `table` and of this schema version.
    [<CompiledName("Read")>]
    let read (path: string) (table: string) : Column list = readTable path (Some table) |> snd

    /// Reads any table written by `write` (of this schema version): its kind and its columns.
    [<CompiledName("ReadAnyKind")>]
    let readAnyKind (path: string) : struct (string * Column list) = let kind, columns = readTable path None in struct (kind, columns)

    /// A table read by `read`, its columns by name (for typed access with `int32s`, `float64s`, …).
    [<CompiledName("ReadByName")>]
    let readByName (path: string) (table: string) : Collections.Generic.IReadOnlyDictionary<string, Column> =
        let columns = Collections.Generic.Dictionary<string, Column>()
        for c in read path table do columns.Add(c.Name, c)
        columns

    /// The column `name` of a table from `path` (named in messages), or `ArtifactException`.
    let column (path: string) (columns: Collections.Generic.IReadOnlyDictionary<string, Column>) (name: string) =
        match columns.TryGetValue name with
        | true, c -> c
        | _ -> failAt path "no column '%s'" name

    let private typeMismatch (path: string) (name: string) (expected: string) : 'T =
        failAt path "column '%s' is not of type %s" name expected

    /// The values of int32 column `name`, or `ArtifactException` naming `path` and the column.
    let int32s path columns name = match column path columns name with Int32Column(_, v) -> v | _ -> typeMismatch path name "Int32"
    /// The values of int64 column `name`, or `ArtifactException` naming `path` and the column.
    let int64s path columns name = match column path columns name with Int64Column(_, v) -> v | _ -> typeMismatch path name "Int64"
    /// The values of float32 column `name`, or `ArtifactException` naming `path` and the column.
    let float32s path columns name = match column path columns name with Float32Column(_, v) -> v | _ -> typeMismatch path name "Single"
    /// The values of float64 column `name`, or `ArtifactException` naming `path` and the column.
    let float64s path columns name = match column path columns name with Float64Column(_, v) -> v | _ -> typeMismatch path name "Double"
    /// The values of string column `name`, or `ArtifactException` naming `path` and the column.
    let strings path columns name = match column path columns name with StringColumn(_, v) -> v | _ -> typeMismatch path name "String"
