using Thermo.Trainer.Training;

namespace Thermo.Cli;

/// <summary>
/// A run directory that cannot be used as asked (<see cref="RunDirectoryException"/>), worded with the
/// flags that name it and the flag that would resolve it: the library says what and where, the CLI
/// says what to type.
/// </summary>
public static class RunDirectoryFlags
{
    public static string Message(RunDirectoryException e) => e.Conflict switch
    {
        RunDirectoryConflict.HoldsCompleteRun => $"--out: {e.Message}; pass --force to replace it",
        RunDirectoryConflict.HoldsUnfinishedRun => $"--out: {e.Message}; continue it with --resume {e.Directory}, or pass --force to replace it",
        RunDirectoryConflict.NotARun => $"--out: {e.Message}; choose another directory or pass --force",
        RunDirectoryConflict.AlreadyComplete => $"--resume: {e.Message}; pass a larger --epochs to continue it",
        RunDirectoryConflict.EpochsBelowProgress => $"--epochs: {e.Message}",
        RunDirectoryConflict.AnotherExperiment => $"--out: {e.Message}; choose another directory or remove it",
        RunDirectoryConflict.MoreEpochs => $"--out: {e.Message}; choose another directory",
        _ => e.Message,
    };
}
