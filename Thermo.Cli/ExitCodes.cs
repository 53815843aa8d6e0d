using Thermo.Trainer.Training;
using Thermo.Trainer;
namespace Thermo.Cli;

/// <summary>Process exit codes of the <c>thermo</c> executable.</summary>
public static class ExitCodes
{
    public const int Ok = 0;
    /// <summary>Bad input: a flag, a data file or a run directory that cannot be used.</summary>
    public const int BadInput = 2;
    /// <summary>An unexpected internal failure (a bug): the stack trace is printed.</summary>
    public const int InternalError = 3;
    /// <summary>The native self-check found this machine's kernels computing wrongly: nothing was trained.</summary>
    public const int WrongNumerics = 4;
}
