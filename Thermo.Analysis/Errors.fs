namespace Thermo.Analysis

/// Raised for any file or directory that is not a readable Thermo artifact. The message names the file
/// and the fault ("PATH: FAULT"); `Path` is the file or directory at fault, for a caller that acts on it
/// rather than on the words — empty where a fault has no one path (then only the message names it).
type ArtifactException(message: string, path: string) =
    inherit System.Exception(message)

    /// A fault whose message names the file, raised where no one path is at hand; `Path` is empty.
    new(message: string) = ArtifactException(message, "")

    /// The file or directory at fault ("" when the message alone names it).
    member _.Path = path

/// Raised when a file or directory that a stage writes only when asked was never written. `Path` is
/// where it should be, `Detail` what is missing ("no per-step snapshots (RUN/snapshots/steps)");
/// `WrittenBy` names, in the library's words, the setting that makes its stage write it
/// ("StepSnapshotEpochs" of training, "Curves" of pruning, "SlurmScheduler" of a sweep); `Setting` the
/// setting that gave `Path` ("" for a plain argument). The front end words the remedy with its flags.
/// `Message` is "PATH: DETAIL".
type NotWrittenException(path: string, detail: string, writtenBy: string, setting: string) =
    inherit ArtifactException(path + ": " + detail, path)

    /// `path`, a plain argument, lacks what `writtenBy` writes.
    new(path: string, detail: string, writtenBy: string) = NotWrittenException(path, detail, writtenBy, "")

    /// What is missing, without the path.
    member _.Detail = detail
    /// The setting that makes its stage write it.
    member _.WrittenBy = writtenBy
    /// The setting that gave `Path` ("" for a plain argument).
    member _.Setting = setting

/// F# pattern over the library's artifact faults: `with ArtifactException message -> …` binds the message.
[<AutoOpen>]
module ArtifactExceptionPattern =
    let (|ArtifactException|_|) (e: exn) =
        match e with
        | :? ArtifactException as a -> Some a.Message
        | _ -> None

/// The analysis setting a `SettingException` is about. The library never spells a command-line flag;
/// a front end maps each setting to its own flag (`Window` → `--window`, …).
type AnalysisSetting =
    /// The equilibrium window (`auto`, `last:N`, `a:b`).
    | Window = 0
    /// The layers to analyse.
    | Layers = 1
    /// The temperature grouping (layer, unit, weight).
    | Groups = 2
    /// The layers whose units get MSD curves and fits.
    | MsdLayers = 3
    /// The lag range of the α and D fits.
    | FitLags = 4

/// Filling in the other settings a `SettingException`'s detail names.
module internal SettingDetail =
    /// `template` with each `{i}` replaced by `names[i]`; verbatim when there are no names, so a
    /// detail that names no other setting may hold any text.
    let fill (template: string) (names: string[]) =
        if isNull names then template
        else names |> Array.fold (fun (text: string, i) name -> text.Replace("{" + string i + "}", name), i + 1) (template, 0) |> fst

/// Raised when a setting cannot be used (malformed, or impossible for this run); file and data
/// problems raise `ArtifactException` instead. `Setting` names the setting in the library's own
/// vocabulary — an `AnalysisSetting` name, or the property of a C# settings record such as
/// `TrainConfig.Epochs` (`nameof`) — never a command-line flag: the front end maps it to its flag.
/// `Detail` reads as the text after a flag ("last:12 is longer than the run (snapshots 0..10)");
/// `Run` is the run (or file) it was checked against, or empty when the setting was rejected on its
/// own. `Message` is "RUN: DETAIL" (or DETAIL).
///
/// A detail that needs another setting ("N must be at most Epochs", "needs Ledger too") names it
/// the same way: `related` lists those settings and the detail holds `{0}`, `{1}`, … where each is
/// named. `Detail` and `Message` write each by its name; a front end writes each as its own word
/// for it (`DetailNaming`), so that no flag enters the library's words.
type SettingException(setting: string, run: string, detail: string, [<System.ParamArray>] related: string[]) =
    inherit System.Exception(
        let words = SettingDetail.fill detail related
        if System.String.IsNullOrEmpty run then words else run + ": " + words)

    let related = if isNull related then [||] else related

    new(setting: string, run: string, detail: string) = SettingException(setting, run, detail, [||])

    new(setting: AnalysisSetting, run: string, detail: string) = SettingException(string setting, run, detail, [||])

    /// Which setting is at fault (e.g. "Window", "Epochs").
    member _.Setting = setting
    /// The run directory it was checked against ("" when rejected while parsing).
    member _.Run = run
    /// What is wrong with it, without the run and without any flag name; the other settings it
    /// names (`Related`) by their names.
    member _.Detail = SettingDetail.fill detail related
    /// The other settings the detail names, in the library's vocabulary (empty for most).
    member _.Related = Array.copy related
    /// The detail with each of `Related` written as `name` gives it (a front end's flag).
    member _.DetailNaming(name: System.Func<string, string>) = SettingDetail.fill detail (related |> Array.map name.Invoke)

/// Raising the library's errors with printf-style messages.
module internal Errors =
    /// Raises `ArtifactException` with a formatted message (no `Path`: prefer `artifactAt`).
    let artifact fmt = Printf.kprintf (fun message -> raise (ArtifactException message)) fmt

    /// Raises `ArtifactException` about `path`: its `Path` is `path`, its message "PATH: DETAIL" with
    /// the formatted detail.
    let artifactAt (path: string) fmt =
        Printf.kprintf (fun detail -> raise (ArtifactException(path + ": " + detail, path))) fmt

    /// Raises `ArtifactException` about `path` with the formatted message as it is (it names the
    /// file itself, in words of its own); its `Path` is `path`.
    let artifactNaming (path: string) fmt =
        Printf.kprintf (fun message -> raise (ArtifactException(message, path))) fmt

    /// Raises `SettingException` for `setting` of `run` with a formatted detail.
    let setting (setting: AnalysisSetting) (run: string) fmt =
        Printf.kprintf (fun detail -> raise (SettingException(setting, run, detail))) fmt
