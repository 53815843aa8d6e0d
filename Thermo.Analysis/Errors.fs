namespace Thermo.Analysis

/// Raised for any file that is not a readable Thermo artifact; the message names the file and the fault.
exception ArtifactException of string
    with override e.Message = e.Data0

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

/// Raised when a setting cannot be used (malformed, or impossible for this run); file and data
/// problems raise `ArtifactException` instead. `Setting` names the setting in the library's own
/// vocabulary — an `AnalysisSetting` name, or the property of a C# settings record such as
/// `TrainConfig.Epochs` (`nameof`) — never a command-line flag: the front end maps it to its flag.
/// `Detail` reads as the text after a flag ("last:12 is longer than the run (snapshots 0..10)");
/// `Run` is the run (or file) it was checked against, or empty when the setting was rejected on its
/// own. `Message` is "RUN: DETAIL" (or DETAIL).
type SettingException(setting: string, run: string, detail: string) =
    inherit System.Exception(if System.String.IsNullOrEmpty run then detail else run + ": " + detail)

    new(setting: AnalysisSetting, run: string, detail: string) = SettingException(string setting, run, detail)

    /// Which setting is at fault (e.g. "Window", "Epochs").
    member _.Setting = setting
    /// The run directory it was checked against ("" when rejected while parsing).
    member _.Run = run
    /// What is wrong with it, without the run and without any flag name.
    member _.Detail = detail

/// Raising the library's errors with printf-style messages.
module internal Errors =
    /// Raises `ArtifactException` with a formatted message.
    let artifact fmt = Printf.kprintf (fun message -> raise (ArtifactException message)) fmt

    /// Raises `SettingException` for `setting` of `run` with a formatted detail.
    let setting (setting: AnalysisSetting) (run: string) fmt =
        Printf.kprintf (fun detail -> raise (SettingException(setting, run, detail))) fmt
