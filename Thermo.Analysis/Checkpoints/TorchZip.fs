namespace Thermo.Analysis.Checkpoints

open System
open System.Buffers.Binary
open System.Collections.Generic
open System.Globalization
open System.IO
open System.Numerics
open System.Text
open Thermo.Analysis

/// One entry of a zip file's central directory.
type internal ZipEntry =
    { Name: string
      /// 0: stored; anything else is compressed.
      Method: int
      CompressedSize: int64
      Size: int64
      LocalHeaderOffset: int64 }

/// The central directory of a zip file, read with every length checked against the file before
/// anything is allocated: a corrupt or hostile header gives an `ArtifactException`, never a giant
/// array. ZIP64 (files and entries over 4 GiB, as torch.save writes them) included.
module internal ZipDirectory =
    let private u16 (b: byte[]) i = int (BinaryPrimitives.ReadUInt16LittleEndian(ReadOnlySpan(b, i, 2)))
    let private u32 (b: byte[]) i = int64 (BinaryPrimitives.ReadUInt32LittleEndian(ReadOnlySpan(b, i, 4)))
    let private u64 (b: byte[]) i = BinaryPrimitives.ReadUInt64LittleEndian(ReadOnlySpan(b, i, 8))

    /// The central directory is read whole; a torch checkpoint's has a hundred bytes per tensor.
    let private maxDirectoryBytes = 256L <<< 20

    let private readAt (stream: Stream) (path: string) (offset: int64) (count: int) =
        let buffer = Array.zeroCreate<byte> count
        stream.Seek(offset, SeekOrigin.Begin) |> ignore
        try stream.ReadExactly(buffer, 0, count)
        with :? EndOfStreamException -> Errors.artifactAt path "a truncated zip file (it ends at byte %d)" stream.Length
        buffer

    /// The end-of-central-directory record: its position and its bytes (the last one in the file).
    let private findEnd (stream: Stream) (path: string) =
        let length = stream.Length
        let tailLength = int (min length (22L + 65535L))
        let tail = readAt stream path (length - int64 tailLength) tailLength
        let mutable at = tailLength - 22
        while at >= 0 && not (tail[at] = 0x50uy && tail[at + 1] = 0x4Buy && tail[at + 2] = 5uy && tail[at + 3] = 6uy) do
            at <- at - 1
        if at < 0 then
            Errors.artifactAt path "a truncated or corrupt zip file (no end of central directory; was it copied whole?)"
        length - int64 tailLength + int64 at, tail.AsSpan(at, 22).ToArray()

    /// (central directory offset, size, entry count), from the ZIP64 record when the classic one overflows.
    let private directoryBounds (stream: Stream) (path: string) =
        let endAt, record = findEnd stream path
        let count, size, offset = int64 (u16 record 10), u32 record 12, u32 record 16
        if count <> 0xFFFFL && size <> 0xFFFFFFFFL && offset <> 0xFFFFFFFFL then offset, size, count, endAt
        else
            if endAt < 20L then Errors.artifactAt path "a corrupt zip file (ZIP64 locator missing)"
            let locator = readAt stream path (endAt - 20L) 20
            if u32 locator 0 <> 0x07064b50L then Errors.artifactAt path "a corrupt zip file (ZIP64 locator missing)"
            let recordAt = u64 locator 8
            if endAt < 76L || recordAt > uint64 (endAt - 20L - 56L) then Errors.artifactAt path "a corrupt zip file (ZIP64 record outside the file)"
            let record64 = readAt stream path (int64 recordAt) 56
            if u32 record64 0 <> 0x06064b50L then Errors.artifactAt path "a corrupt zip file (bad ZIP64 record)"
            let count, size, offset = u64 record64 32, u64 record64 40, u64 record64 48
            if count > uint64 Int64.MaxValue || size > uint64 Int64.MaxValue || offset > uint64 Int64.MaxValue then
                Errors.artifactAt path "a corrupt zip file (ZIP64 sizes beyond any file)"
            int64 offset, int64 size, int64 count, int64 recordAt

    /// Every entry of the zip file open in `stream`, in directory order.
    let read (stream: Stream) (path: string) =
        let offset, size, count, directoryEnd = directoryBounds stream path
        if offset < 0L || size < 0L || offset > directoryEnd || size > directoryEnd - offset then
            Errors.artifactAt path "a truncated or corrupt zip file (its central directory lies outside the file)"
        if size > maxDirectoryBytes then Errors.artifactAt path "a zip central directory of %d bytes, more than a checkpoint has" size
        let directory = readAt stream path offset (int size)
        let entries = ResizeArray<ZipEntry>()
        let mutable at = 0
        while at + 46 <= directory.Length && u32 directory at = 0x02014b50L do
            let nameLength, extraLength, commentLength = u16 directory (at + 28), u16 directory (at + 30), u16 directory (at + 32)
            if at + 46 + nameLength + extraLength + commentLength > directory.Length then
                Errors.artifactAt path "a corrupt zip file (a directory entry runs past the directory)"
            let name = Encoding.UTF8.GetString(directory, at + 46, nameLength)
            let mutable compressed, uncompressed, local = u32 directory (at + 20), u32 directory (at + 24), u32 directory (at + 42)
            // ZIP64 extra field: the 64-bit values, in this order, of the fields that overflowed.
            let mutable extra = at + 46 + nameLength
            let extraEnd = extra + extraLength
            while extra + 4 <= extraEnd do
                let id, length = u16 directory extra, u16 directory (extra + 2)
                if id = 1 then
                    let mutable field = extra + 4
                    let next (value: int64) =
                        if value <> 0xFFFFFFFFL then value
                        elif field + 8 > min extraEnd (extra + 4 + length) then
                            Errors.artifactAt path "a corrupt zip file (short ZIP64 field of %s)" name
                        else
                            let wide = u64 directory field
                            field <- field + 8
                            if wide > uint64 Int64.MaxValue then Errors.artifactAt path "a corrupt zip file (entry %s beyond any size)" name
                            int64 wide
                    uncompressed <- next uncompressed
                    compressed <- next compressed
                    local <- next local
                extra <- extra + 4 + length
            entries.Add
                { Name = name
                  Method = u16 directory (at + 10)
                  CompressedSize = compressed
                  Size = uncompressed
                  LocalHeaderOffset = local }
            at <- at + 46 + nameLength + extraLength + commentLength
        if int64 entries.Count <> count then
            Errors.artifactAt path "a corrupt zip file (its directory lists %d entries, %d readable)" count entries.Count
        entries.ToArray()

    /// Where `entry`'s stored bytes start in the file, from its local header; `ArtifactException`
    /// when it is compressed or its bytes run past the end of the file.
    let dataOffset (stream: Stream) (path: string) (entry: ZipEntry) =
        if entry.Method <> 0 then
            Errors.artifactAt path "zip entry %s is compressed (method %d); torch.save stores its entries uncompressed, so the file was re-zipped: unzip it and save it again with torch.save"
                entry.Name entry.Method
        if entry.CompressedSize <> entry.Size then
            Errors.artifactAt path "a corrupt zip file (stored entry %s with two sizes)" entry.Name
        let length = stream.Length
        if entry.LocalHeaderOffset < 0L || entry.LocalHeaderOffset > length - 30L then
            Errors.artifactAt path "a truncated or corrupt zip file (entry %s starts outside the file)" entry.Name
        let header = readAt stream path entry.LocalHeaderOffset 30
        if u32 header 0 <> 0x04034b50L then Errors.artifactAt path "a corrupt zip file (no local header for entry %s)" entry.Name
        let start = entry.LocalHeaderOffset + 30L + int64 (u16 header 26) + int64 (u16 header 28)
        if start > length || entry.Size > length - start then
            Errors.artifactAt path "a truncated zip file (entry %s needs %d bytes from byte %d; the file has %d)" entry.Name entry.Size start length
        start

/// The values a torch.save pickle builds, Python's objects reduced to what the reader needs.
/// None is null; ints are int64 (BigInteger beyond); floats are float; str is string; bytes are
/// byte[]; tuples are obj[]; lists and sets are ResizeArray<obj>.
module internal PickleValues =
    /// A dict, in insertion order as Python keeps it.
    [<Sealed; AllowNullLiteral>]
    type PyDict(ordered: bool) =
        let items = ResizeArray<KeyValuePair<obj, obj>>()
        let index = Dictionary<obj, int>()
        /// None as a key (a Dictionary refuses null).
        static let noneKey = obj ()
        /// collections.OrderedDict rather than dict.
        member _.IsOrdered = ordered
        member _.Items = items
        member _.Set(key: obj, value: obj) =
            let k = if isNull key then noneKey else key
            match index.TryGetValue k with
            | true, i -> items[i] <- KeyValuePair(key, value)
            | _ ->
                index[k] <- items.Count
                items.Add(KeyValuePair(key, value))
        member _.TryFind(key: string) =
            match index.TryGetValue key with
            | true, i -> Some items[i].Value
            | _ -> None

    /// A module-level name the pickle refers to (`GLOBAL`): a class or function, never resolved.
    [<Sealed>]
    type PyGlobal(moduleName: string, name: string) =
        member _.Module = moduleName
        member _.Name = name
        member val FullName = moduleName + "." + name

    /// An object of a class outside the allow-list: inert data recording its class and what the
    /// pickle gave it (arguments, state, dict or list items for a dict or list subclass).
    [<Sealed>]
    type PyInstance(cls: PyGlobal, args: obj[]) =
        member _.Class = cls
        member _.Args = args
        member val State: obj = null with get, set
        member val Items = PyDict(false)
        member val Elements = ResizeArray<obj>()

    /// A torch storage named by a persistent id: its zip entry key, dtype and element count.
    type PyStorage =
        { Key: string
          DType: Result<StoredDType, string>
          ElementSize: int
          Count: int64 }

    /// A tensor built by `_rebuild_tensor_v2` (or a Parameter wrapping one).
    type PyTensor =
        { Storage: PyStorage
          Offset: int64
          Size: int64[]
          Stride: int64[] }

    /// What a value is, for error messages: Python's type name, or the class of an inert object.
    let describe (value: obj) =
        match value with
        | null -> "None"
        | :? bool -> "bool"
        | :? int64 | :? BigInteger -> "int"
        | :? float -> "float"
        | :? string -> "str"
        | :? (byte[]) -> "bytes"
        | :? (obj[]) -> "tuple"
        | :? ResizeArray<obj> -> "list"
        | :? PyDict as d -> if d.IsOrdered then "collections.OrderedDict" else "dict"
        | :? PyGlobal as g -> g.FullName
        | :? PyInstance as i -> i.Class.FullName
        | :? PyStorage -> "storage"
        | :? PyTensor -> "tensor"
        | other -> other.GetType().Name

/// A pickle virtual machine that runs no code: it knows the opcodes of every protocol (0–5), builds
/// dicts, lists, tuples and scalars, and of all the globals a pickle may call it honours only those
/// torch.load(weights_only=True) allows for a state dict (the tensor and parameter rebuilders,
/// OrderedDict). Every other call makes an inert `PyInstance`; globals that exist to run code
/// (`os.system`, `builtins.exec`, …) refuse the whole file, as no honest checkpoint names them.
module internal SafePickle =
    open PickleValues

    let private dangerousModules =
        set [ "os"; "posix"; "nt"; "subprocess"; "sys"; "runpy"; "pty"; "shutil"; "socket"; "ctypes"; "pickle"; "_pickle"
              "marshal"; "code"; "codeop"; "webbrowser"; "commands"; "_posixsubprocess"; "signal"; "pdb"; "timeit"
              "platform"; "importlib"; "multiprocessing"; "asyncio"; "threading"; "_thread"; "pydoc"; "bdb"; "cProfile"; "profile"; "trace" ]
    let private dangerousBuiltins =
        set [ "eval"; "exec"; "compile"; "getattr"; "setattr"; "delattr"; "__import__"; "open"; "input"; "breakpoint"
              "globals"; "locals"; "vars"; "execfile"; "apply"; "help"; "exit"; "quit" ]

    /// Globals that exist to run code or reach the system: no checkpoint has a reason to name them.
    let isDangerous (moduleName: string) (name: string) =
        let top = match moduleName.IndexOf '.' with -1 -> moduleName | i -> moduleName.Substring(0, i)
        dangerousModules.Contains top
        || ((moduleName = "builtins" || moduleName = "__builtin__") && dangerousBuiltins.Contains name)

    /// torch's storage classes: the element type of each, and its name for a dtype Thermo does not read.
    let private storageTypes =
        dict [ "FloatStorage", Ok StoredDType.Float32; "HalfStorage", Ok StoredDType.Float16
               "BFloat16Storage", Ok StoredDType.BFloat16; "DoubleStorage", Ok StoredDType.Float64
               "LongStorage", Error "int64"; "IntStorage", Error "int32"; "ShortStorage", Error "int16"
               "CharStorage", Error "int8"; "ByteStorage", Error "uint8"; "BoolStorage", Error "bool"
               "ComplexFloatStorage", Error "complex64"; "ComplexDoubleStorage", Error "complex128"
               "QInt8Storage", Error "qint8"; "QUInt8Storage", Error "quint8"; "QInt32Storage", Error "qint32"
               "QUInt4x2Storage", Error "quint4x2"; "QUInt2x4Storage", Error "quint2x4" ]

    let private storageElementSize (dtype: Result<StoredDType, string>) =
        match dtype with
        | Ok d -> ElementConversion.elementSize d
        | Error("int64" | "complex64") -> 8
        | Error "int32" | Error "qint32" -> 4
        | Error "int16" -> 2
        | Error "complex128" -> 16
        | Error _ -> 1

    /// The most values one pickle may make (see `push`).
    let private maxValues = 4_000_000

    [<Sealed>]
    type private Machine(path: string, data: byte[]) =
        let stack = ResizeArray<obj>()
        let marks = Stack<int>()
        let memo = Dictionary<int64, obj>()
        let mutable pos = 0

        let corrupt detail : 'a = Errors.artifactAt path "data.pkl is not a readable pickle (%s)" detail

        let need (n: int64) =
            if n < 0L || n > int64 (data.Length - pos) then corrupt (sprintf "a length of %d at byte %d runs past its end" n pos)
        let byte1 () = need 1L; pos <- pos + 1; data[pos - 1]
        let bytes (n: int64) =
            need n
            let start = pos
            pos <- pos + int n
            ReadOnlySpan<byte>(data, start, int n)
        let u16 () = int (BinaryPrimitives.ReadUInt16LittleEndian(bytes 2L))
        let i32 () = BinaryPrimitives.ReadInt32LittleEndian(bytes 4L)
        let u32 () = int64 (BinaryPrimitives.ReadUInt32LittleEndian(bytes 4L))
        let i64 () = BinaryPrimitives.ReadInt64LittleEndian(bytes 8L)
        let line () =
            let eol = Array.IndexOf(data, 10uy, pos)
            if eol < 0 then corrupt "a text argument without its end of line"
            let text = Encoding.UTF8.GetString(data, pos, eol - pos)
            pos <- eol + 1
            text

        // Every value the pickle makes passes here: a bound on their number bounds the memory a
        // crafted pickle can take (a state dict of thousands of tensors pushes some 10^5).
        let mutable pushed = 0
        let push (value: obj) =
            pushed <- pushed + 1
            if pushed > maxValues then corrupt (sprintf "more than %d values; not a state dict" maxValues)
            stack.Add value
        let pop () =
            let floor = if marks.Count > 0 then marks.Peek() else 0
            if stack.Count <= floor then corrupt "an opcode pops an empty stack"
            let value = stack[stack.Count - 1]
            stack.RemoveAt(stack.Count - 1)
            value
        let top () =
            if stack.Count = 0 then corrupt "an opcode reads an empty stack"
            stack[stack.Count - 1]
        let popMark () =
            if marks.Count = 0 then corrupt "a MARK is missing"
            let start = marks.Pop()
            let items = stack.GetRange(start, stack.Count - start).ToArray()
            stack.RemoveRange(start, stack.Count - start)
            items
        let memoGet key =
            match memo.TryGetValue key with
            | true, value -> push value
            | _ -> corrupt (sprintf "memo %d is read before it is written" key)
        let memoPut key = memo[key] <- top ()

        /// Python's little-endian two's-complement long encoding.
        let long (raw: ReadOnlySpan<byte>) : obj =
            // torch.save writes no integer wider than 8 bytes; a long one is a crafted pickle.
            if raw.Length > 64 then corrupt (sprintf "an integer of %d bytes" raw.Length)
            if raw.Length = 0 then box 0L
            elif raw.Length <= 8 then
                let mutable value = 0L
                for i in raw.Length - 1 .. -1 .. 0 do
                    value <- (value <<< 8) ||| int64 raw[i]
                let unused = 64 - 8 * raw.Length
                box ((value <<< unused) >>> unused)
            else box (BigInteger(raw, isUnsigned = false, isBigEndian = false))

        let integer (text: string) : obj =
            let text = text.TrimEnd('L')
            // Parsing a long decimal string costs time quadratic in its length.
            if text.Length > 40 then corrupt (sprintf "an integer of %d digits" text.Length)
            match Int64.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture) with
            | true, v -> box v
            | _ ->
                match BigInteger.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture) with
                | true, v -> box v
                | _ -> corrupt (sprintf "an integer %s" text)

        let asInt (what: string) (value: obj) =
            match value with
            | :? int64 as v -> v
            | :? bool as b -> if b then 1L else 0L
            | _ -> corrupt (sprintf "%s is a %s, not an int" what (describe value))

        let asIntTuple (what: string) (value: obj) =
            match value with
            | :? (obj[]) as items -> items |> Array.map (asInt what)
            | _ -> corrupt (sprintf "%s is a %s, not a tuple" what (describe value))

        let global' (moduleName: string) (name: string) : obj =
            if isDangerous moduleName name then
                Errors.artifactAt path "its pickle calls %s.%s, which runs code or reaches the system; refused without running anything (this is no checkpoint torch.save writes from a model)"
                    moduleName name
            box (PyGlobal(moduleName, name))

        /// torch's persistent id of a storage: ('storage', storage class, key, location, element count).
        let persistentLoad (pid: obj) : obj =
            match pid with
            | :? (obj[]) as t when t.Length >= 5 && (t[0] :? string) && string t[0] = "storage" ->
                let dtype =
                    match t[1] with
                    | :? PyGlobal as g when g.Module = "torch" && storageTypes.ContainsKey g.Name -> storageTypes[g.Name]
                    | :? PyGlobal as g -> Error g.FullName
                    | other -> corrupt (sprintf "a storage type that is a %s" (describe other))
                let key = match t[2] with :? string as k -> k | other -> corrupt (sprintf "a storage key that is a %s" (describe other))
                let count = asInt "a storage's element count" t[4]
                if count < 0L then corrupt "a negative storage size"
                box { Key = key; DType = dtype; ElementSize = storageElementSize dtype; Count = count }
            | other -> corrupt (sprintf "a persistent id that is a %s, not a torch storage" (describe other))

        let rebuildTensor (args: obj[]) : obj =
            if args.Length < 4 then corrupt "_rebuild_tensor_v2 with too few arguments"
            match args[0] with
            | :? PyStorage as storage ->
                let size = asIntTuple "a tensor's size" args[2]
                let stride = asIntTuple "a tensor's stride" args[3]
                if size.Length <> stride.Length then corrupt "a tensor whose size and stride differ in length"
                box { Storage = storage; Offset = asInt "a storage offset" args[1]; Size = size; Stride = stride }
            | other -> corrupt (sprintf "_rebuild_tensor_v2 of a %s, not a storage" (describe other))

        /// Calls `callable` on `args` — only the allow-listed functions do anything; any other
        /// class or function becomes an inert instance of it.
        let rec call (depth: int) (callable: obj) (args: obj[]) : obj =
            match callable with
            | :? PyGlobal as g ->
                match g.FullName with
                | "collections.OrderedDict" ->
                    let d = PyDict(true)
                    // OrderedDict(pairs), as older protocols reduce it.
                    match args with
                    | [| :? ResizeArray<obj> as pairs |] ->
                        for pair in pairs do
                            match pair with
                            | :? ResizeArray<obj> as kv when kv.Count = 2 -> d.Set(kv[0], kv[1])
                            | :? (obj[]) as kv when kv.Length = 2 -> d.Set(kv[0], kv[1])
                            | _ -> corrupt "OrderedDict of something other than pairs"
                    | _ -> ()
                    box d
                | "torch._utils._rebuild_tensor_v2" | "torch._utils._rebuild_tensor" -> rebuildTensor args
                | "torch._utils._rebuild_parameter" | "torch._utils._rebuild_parameter_with_state" ->
                    // A Parameter is its tensor; requires_grad and hooks do not matter here.
                    if args.Length = 0 then corrupt "_rebuild_parameter without arguments"
                    args[0]
                | "torch._tensor._rebuild_from_type_v2" when args.Length >= 3 && depth < 4 ->
                    // A tensor subclass: the tensor comes from calling its rebuild function (once;
                    // the depth bound keeps a hostile nesting from exhausting the stack).
                    match args[2] with
                    | :? (obj[]) as inner -> call (depth + 1) args[0] inner
                    | _ -> box (PyInstance(g, args))
                | _ -> box (PyInstance(g, args))
            | other -> corrupt (sprintf "a call of a %s" (describe other))

        let setItems (target: obj) (items: obj[]) =
            if items.Length % 2 <> 0 then corrupt "SETITEMS with a key and no value"
            let d =
                match target with
                | :? PyDict as d -> d
                | :? PyInstance as i -> i.Items
                | other -> corrupt (sprintf "SETITEMS on a %s" (describe other))
            for i in 0 .. 2 .. items.Length - 1 do
                d.Set(items[i], items[i + 1])

        let appendItems (target: obj) (items: obj[]) =
            match target with
            | :? ResizeArray<obj> as list -> list.AddRange items
            | :? PyInstance as i -> i.Elements.AddRange items
            | other -> corrupt (sprintf "APPENDS on a %s" (describe other))

        /// Runs the pickle to its STOP and gives the object it built.
        member _.Run() : obj =
            let mutable result = None
            while result.IsNone do
                if pos >= data.Length then corrupt "it ends without its STOP opcode"
                let opcode = byte1 ()
                match char opcode with
                | '.' -> result <- Some(pop ())
                | '(' -> marks.Push stack.Count
                | '0' -> pop () |> ignore
                | '1' -> popMark () |> ignore
                | '2' -> push (top ())
                | 'F' ->
                    let text = line ()
                    match Double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture) with
                    | true, v -> push (box v)
                    | _ -> corrupt (sprintf "a float %s" text)
                | 'I' ->
                    match line () with
                    | "01" -> push (box true)
                    | "00" -> push (box false)
                    | text -> push (integer text)
                | 'L' -> push (integer (line ()))
                | 'J' -> push (box (int64 (i32 ())))
                | 'K' -> push (box (int64 (byte1 ())))
                | 'M' -> push (box (int64 (u16 ())))
                | 'N' -> push null
                | 'P' -> push (persistentLoad (box (line ())))
                | 'Q' -> push (persistentLoad (pop ()))
                | 'R' | '\x81' ->
                    let args = match pop () with :? (obj[]) as a -> a | other -> corrupt (sprintf "call arguments that are a %s" (describe other))
                    push (call 0 (pop ()) args)
                | '\x92' ->
                    pop () |> ignore // keyword arguments: nothing allow-listed takes any
                    let args = match pop () with :? (obj[]) as a -> a | other -> corrupt (sprintf "call arguments that are a %s" (describe other))
                    push (call 0 (pop ()) args)
                | 'S' -> push (line ()) // protocol 0 string: kept quoted and escaped, nothing reads it
                | 'V' -> push (line ())
                | 'T' -> push (Encoding.Latin1.GetString(bytes (int64 (i32 ()))))
                | 'U' -> push (Encoding.Latin1.GetString(bytes (int64 (byte1 ()))))
                | 'X' -> push (Encoding.UTF8.GetString(bytes (u32 ())))
                | '\x8c' -> push (Encoding.UTF8.GetString(bytes (int64 (byte1 ()))))
                | '\x8d' -> push (Encoding.UTF8.GetString(bytes (i64 ())))
                | 'B' -> push ((bytes (u32 ())).ToArray())
                | 'C' -> push ((bytes (int64 (byte1 ()))).ToArray())
                | '\x8e' | '\x96' -> push ((bytes (i64 ())).ToArray())
                | 'a' ->
                    let value = pop ()
                    appendItems (top ()) [| value |]
                | 'e' ->
                    let items = popMark ()
                    appendItems (top ()) items
                | 'b' ->
                    let state = pop ()
                    match top () with
                    | :? PyInstance as i -> i.State <- state
                    | _ -> () // OrderedDict's _metadata, a tensor's state: nothing the reader needs
                | 'c' ->
                    let moduleName = line ()
                    let name = line ()
                    push (global' moduleName name)
                | '\x93' ->
                    let name, moduleName = pop (), pop ()
                    match moduleName, name with
                    | (:? string as m), (:? string as n) -> push (global' m n)
                    | _ -> corrupt "STACK_GLOBAL of something other than two strings"
                | 'i' ->
                    let moduleName = line ()
                    let name = line ()
                    let callable = global' moduleName name
                    push (call 0 callable (popMark ()))
                | 'o' ->
                    let items = popMark ()
                    if items.Length = 0 then corrupt "OBJ without a class"
                    push (call 0 items[0] items[1..])
                | 'd' ->
                    let items = popMark ()
                    let d = PyDict(false)
                    setItems d items
                    push d
                | '}' -> push (PyDict(false))
                | 's' ->
                    let value = pop ()
                    let key = pop ()
                    setItems (top ()) [| key; value |]
                | 'u' ->
                    let items = popMark ()
                    setItems (top ()) items
                | 'l' -> push (ResizeArray<obj>(popMark ()))
                | ']' -> push (ResizeArray<obj>())
                | 't' -> push (popMark ())
                | ')' -> push (Array.empty<obj>)
                | '\x85' -> push [| pop () |]
                | '\x86' ->
                    let b = pop ()
                    let a = pop ()
                    push [| a; b |]
                | '\x87' ->
                    let c = pop ()
                    let b = pop ()
                    let a = pop ()
                    push [| a; b; c |]
                | 'g' -> memoGet (asInt "a memo key" (integer (line ())))
                | 'h' -> memoGet (int64 (byte1 ()))
                | 'j' -> memoGet (int64 (i32 ()))
                | 'p' -> memoPut (asInt "a memo key" (integer (line ())))
                | 'q' -> memoPut (int64 (byte1 ()))
                | 'r' -> memoPut (u32 ())
                | '\x94' -> memoPut (int64 memo.Count)
                | 'G' -> push (box (BinaryPrimitives.ReadDoubleBigEndian(bytes 8L)))
                | '\x80' ->
                    let protocol = byte1 ()
                    if protocol > 5uy then corrupt (sprintf "pickle protocol %d" protocol)
                | '\x88' -> push (box true)
                | '\x89' -> push (box false)
                | '\x8a' -> push (long (bytes (int64 (byte1 ()))))
                | '\x8b' -> push (long (bytes (int64 (i32 ()))))
                | '\x8f' -> push (ResizeArray<obj>())
                | '\x90' ->
                    let items = popMark ()
                    appendItems (top ()) items
                | '\x91' -> push (ResizeArray<obj>(popMark ()))
                | '\x95' -> (need 8L; pos <- pos + 8) // FRAME: a length hint
                | '\x98' -> () // READONLY_BUFFER
                | '\x82' | '\x83' | '\x84' -> corrupt "an extension-registry code (EXT), which torch.save never writes"
                | '\x97' -> corrupt "an out-of-band buffer (NEXT_BUFFER), which torch.save never writes"
                | _ -> corrupt (sprintf "unknown opcode 0x%02x at byte %d" opcode (pos - 1))
            result.Value

    /// Unpickles `data` (the data.pkl of `path`) with no code run: see the module's summary.
    let load (path: string) (data: byte[]) : obj =
        try Machine(path, data).Run()
        with
        | :? InvalidCastException | :? IndexOutOfRangeException | :? ArgumentException | :? OverflowException as e ->
            // Defence in depth: every fault should already be named above.
            Errors.artifactAt path "data.pkl is not a readable pickle (%s)" e.Message

/// PyTorch's torch.save zip checkpoints (PyTorch ≥ 1.6), read without running any Python: the
/// pickle's tensors are located in their storage entries and streamed straight from the file.
module TorchZip =
    open PickleValues

    /// The format name of a torch.save zip checkpoint in `CheckpointContents.Format`.
    [<Literal>]
    let Format = "torch-zip"

    /// data.pkl holds only the dict structure; a state dict of thousands of tensors is a few MB.
    let private maxPickleBytes = 64L <<< 20

    /// The magic number pre-1.6 torch.save pickles first (protocol 2, a LONG1 of 10 bytes).
    let private legacyMagic = [| 0x80uy; 0x02uy; 0x8Auy; 0x0Auy; 0x6Cuy; 0xFCuy; 0x9Cuy; 0x46uy; 0xF9uy; 0x20uy; 0x6Auy; 0xA8uy; 0x50uy; 0x19uy |]

    let private openFile (path: string) =
        CheckpointNames.checkRegularFile path
        try new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.RandomAccess)
        with
        | :? FileNotFoundException | :? DirectoryNotFoundException -> Errors.artifactAt path "does not exist"
        | :? IOException | :? UnauthorizedAccessException as e -> Errors.artifactAt path "cannot be read (%s)" e.Message

    /// Refuses a file that is not a zip, naming what it is when that is recognisable.
    let private checkZipMagic (stream: Stream) (path: string) =
        let head = Array.zeroCreate<byte> legacyMagic.Length
        let n = stream.ReadAtLeast(head.AsSpan(), head.Length, false)
        if n = 0 then Errors.artifactAt path "an empty file, not a torch.save checkpoint"
        if n >= legacyMagic.Length && Array.forall2 (=) head legacyMagic then
            Errors.artifactAt path "a legacy (pre-1.6, non-zip) torch.save file; re-save it with PyTorch ≥ 1.6 (torch.save(torch.load(file), file) writes the zip format)"
        if head[0] = 0x80uy then
            Errors.artifactAt path "a bare pickle, not a torch.save zip checkpoint (Thermo reads torch.save files of PyTorch ≥ 1.6, and safetensors)"
        if n < 4 || not (head[0] = 0x50uy && head[1] = 0x4Buy && ((head[2] = 3uy && head[3] = 4uy) || (head[2] = 5uy && head[3] = 6uy))) then
            Errors.artifactAt path "not a zip file, so not a torch.save checkpoint (PyTorch ≥ 1.6 writes a zip)"

    /// An open torch zip file: its stream, entries by name, and the prefix of its archive folder.
    type private Archive =
        { Path: string
          Stream: FileStream
          Entries: IReadOnlyDictionary<string, ZipEntry>
          Prefix: string }

    let private openArchive (path: string) =
        let stream = openFile path
        try
            checkZipMagic stream path
            let entries = ZipDirectory.read stream path
            let pickles =
                entries |> Array.filter (fun e -> e.Name.EndsWith("/data.pkl", StringComparison.Ordinal) && e.Name.IndexOf '/' = e.Name.Length - 9)
            let prefix =
                match pickles with
                | [| pickle |] -> pickle.Name.Substring(0, pickle.Name.Length - 8)
                | [||] -> Errors.artifactAt path "a zip file but not a torch.save checkpoint (no <archive>/data.pkl entry)"
                | _ -> Errors.artifactAt path "a zip file with %d data.pkl entries, not one torch.save checkpoint" pickles.Length
            let byName = Dictionary<string, ZipEntry>()
            for e in entries do byName[e.Name] <- e
            { Path = path; Stream = stream; Entries = byName; Prefix = prefix }
        with _ ->
            stream.Dispose()
            reraise ()

    let private entryBytes (archive: Archive) (entry: ZipEntry) (limit: int64) =
        let start = ZipDirectory.dataOffset archive.Stream archive.Path entry
        if entry.Size > limit then Errors.artifactAt archive.Path "entry %s is %d bytes, more than a torch.save checkpoint holds there" entry.Name entry.Size
        let bytes = Array.zeroCreate<byte> (int entry.Size)
        archive.Stream.Seek(start, SeekOrigin.Begin) |> ignore
        archive.Stream.ReadExactly(bytes, 0, bytes.Length)
        bytes

    let private checkByteOrder (archive: Archive) =
        match archive.Entries.TryGetValue(archive.Prefix + "byteorder") with
        | true, entry ->
            let order = Encoding.ASCII.GetString(entryBytes archive entry 64L).Trim()
            if order <> "little" then Errors.artifactAt archive.Path "a %s-endian torch.save file; Thermo reads little-endian storages" order
        | _ -> ()

    /// The state dict, and Lightning's epoch and global step beside it, of the unpickled root.
    let private stateDictOf (path: string) (root: obj) =
        let int64Of (value: obj option) = match value with Some(:? int64 as v) -> Some v | _ -> None
        match root with
        | :? PyDict as top ->
            let epoch = int64Of (top.TryFind "epoch") |> Option.filter (fun e -> e >= 0L && e <= int64 Int32.MaxValue) |> Option.map int
            // Lightning keeps the weights under "state_dict"; PyTorch's own "saving a general
            // checkpoint" recipe under "model_state_dict".
            match top.TryFind "state_dict", top.TryFind "model_state_dict" with
            | Some(:? PyDict as state), _ -> state, true, epoch, int64Of (top.TryFind "global_step")
            | Some other, _ -> Errors.artifactAt path "its \"state_dict\" is a %s, not a dict of tensors" (describe other)
            | None, Some(:? PyDict as state) -> state, false, epoch, int64Of (top.TryFind "global_step")
            | None, Some other -> Errors.artifactAt path "its \"model_state_dict\" is a %s, not a dict of tensors" (describe other)
            | None, None -> top, false, None, None
        | :? PyInstance as i ->
            Errors.artifactAt path "holds a pickled %s object, not a state dict; save model.state_dict() instead" i.Class.FullName
        | :? PyTensor -> Errors.artifactAt path "holds a single tensor, not a state dict; save a dict of tensors (model.state_dict())"
        | other -> Errors.artifactAt path "holds a %s, not a state dict; save model.state_dict() instead" (describe other)

    let private toInt (path: string) (key: string) (values: int64[]) =
        values
        |> Array.map (fun v ->
            if v < 0L || v > int64 Int32.MaxValue then Errors.artifactAt path "tensor %s has a dimension of %d" key v
            int v)

    /// Reads a torch.save zip file's pickle: the state dict (a dict of tensors, or a dict holding one
    /// under "state_dict" as Lightning's .ckpt does, with "epoch" and "global_step" beside it), its
    /// tensors located in their storage entries and checked to lie inside them, none read.
    /// `ArtifactException` naming the file (and the key or class at fault) for anything else.
    let read (options: CheckpointReadOptions) (path: string) : CheckpointContents =
        let archive = openArchive path
        try
            checkByteOrder archive
            let pickle = archive.Entries[archive.Prefix + "data.pkl"]
            let root = SafePickle.load path (entryBytes archive pickle maxPickleBytes)
            let state, lightning, epoch, globalStep = stateDictOf path root
            let entries =
                state.Items.ToArray()
                |> Array.map (fun item ->
                    let key = match item.Key with :? string as k -> k | other -> Errors.artifactAt path "a state-dict key that is a %s, not a str" (describe other)
                    match item.Value with
                    | :? PyTensor as t ->
                        let storage = t.Storage
                        let entry = archive.Prefix + "data/" + storage.Key
                        let bytes = { File = path; Entry = entry; Offset = t.Offset * int64 storage.ElementSize; Strides = t.Stride }
                        if t.Offset < 0L || t.Offset > Int64.MaxValue / 16L then Errors.artifactAt path "tensor %s has a storage offset of %d" key t.Offset
                        key, toInt path key t.Size, storage.DType, bytes
                    | other ->
                        Errors.artifactAt path "state-dict entry %s is a %s, not a tensor; Thermo reads a dict of tensors (or one under \"state_dict\", as Lightning saves it), and honours no other class"
                            key (describe other))
            let stripModelPrefix =
                lightning && entries.Length > 0 && entries |> Array.forall (fun (key, _, _, _) -> key.StartsWith("model.", StringComparison.Ordinal))
            let tensors, dropped = CheckpointNames.classify path options stripModelPrefix entries
            // Every analysed tensor must lie inside its storage entry: checked now, so that a
            // damaged file is refused before any value is streamed.
            for tensor in tensors do
                match archive.Entries.TryGetValue tensor.Bytes.Entry with
                | true, entry ->
                    ZipDirectory.dataOffset archive.Stream path entry |> ignore
                    ElementStream.checkInside ("storage entry " + entry.Name) entry.Size tensor
                | _ -> Errors.artifactAt path "the storage of tensor %s is missing (no zip entry %s)" tensor.StoredKey tensor.Bytes.Entry
            { Path = path
              Format = Format
              Tensors = tensors
              Dropped = dropped
              Epoch = epoch
              GlobalStep = globalStep }
        finally
            archive.Stream.Dispose()

    /// Calls `each tensor archive entry` for each of `tensors` (all from torch zip files), with its
    /// file open (each file opened once, all closed at the end) and the zip entry of its storage;
    /// `ArtifactException` naming the file and key when the entry is missing.
    let private withStorage (tensors: CheckpointTensor[]) (each: CheckpointTensor -> Archive -> ZipEntry -> 'T) : 'T[] =
        let archives = Dictionary<string, Archive>()
        try
            tensors |> Array.map (fun tensor ->
                let archive =
                    match archives.TryGetValue tensor.Bytes.File with
                    | true, a -> a
                    | _ ->
                        let a = openArchive tensor.Bytes.File
                        archives[tensor.Bytes.File] <- a
                        a
                match archive.Entries.TryGetValue(if isNull tensor.Bytes.Entry then "" else tensor.Bytes.Entry) with
                | true, entry -> each tensor archive entry
                | _ -> Errors.artifactAt archive.Path "the storage of tensor %s is missing (no zip entry %s)" tensor.StoredKey tensor.Bytes.Entry)
        finally
            for a in archives.Values do a.Stream.Dispose()

    /// Streams the values of `tensors` (all from torch zip files), in order, each in row-major order
    /// of its `Shape` (transposed when `Transposed`), converted to float32, into caller chunks:
    /// `nextChunk ()` gives an array to fill, `filled chunk count` hands it back. A chunk may span
    /// tensors; only the last one is handed back less than full. Contiguous tensors are read in
    /// blocks straight from the file (float32 straight into the chunk); strided views are gathered
    /// from the part of their storage they span.
    let streamValues (tensors: CheckpointTensor[]) (nextChunk: unit -> float32[]) (filled: float32[] -> int -> unit) =
        let sink = ChunkSink(nextChunk, filled)
        withStorage tensors (fun tensor archive entry ->
            let start = ZipDirectory.dataOffset archive.Stream archive.Path entry
            ElementStream.streamTensor archive.Stream start entry.Size tensor sink)
        |> ignore
        sink.Flush()

    /// Where each of `tensors` (all from torch zip files) counts its byte offset from: the start of
    /// its storage entry's bytes, the entry's length, and the entry's name for messages.
    let regions (tensors: CheckpointTensor[]) : struct (int64 * int64 * string)[] =
        withStorage tensors (fun _ archive entry -> struct (ZipDirectory.dataOffset archive.Stream archive.Path entry, entry.Size, "storage entry " + entry.Name))
