from slt.models.quadratic import QuadraticConfig, QuadraticNet, quadratic_forward

__all__ = ["QuadraticConfig", "QuadraticNet", "quadratic_forward"]
