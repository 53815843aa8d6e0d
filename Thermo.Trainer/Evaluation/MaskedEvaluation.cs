namespace Thermo.Trainer.Evaluation;

/// <summary>Filters of one layer whose weights and bias are set to zero (docs/THEORY.md: a mask always zeroes both).</summary>
public sealed record FilterMask(string Layer, IReadOnlyList<int> Units)
{
    /// <summary>No filter zeroed.</summary>
    public static FilterMask None(string layer) => new(layer, []);
}

/// <summary>Evaluates the run's final model on its test set with the given filters zeroed.</summary>
public interface IMaskedEvaluator
{
    /// <summary>Test loss (mean cross-entropy) and accuracy with <paramref name="mask"/> applied; the model is unchanged afterwards.</summary>
    (double Loss, double Accuracy) Evaluate(FilterMask mask);
}
