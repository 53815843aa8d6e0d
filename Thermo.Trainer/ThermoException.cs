namespace Thermo.Trainer;

/// <summary>
/// An expected failure caused by the user's input (a flag, a file, a directory). The CLI prints its
/// message as one line and exits with its bad-input code; the message names what and where.
/// </summary>
public sealed class ThermoException(string message) : Exception(message);
