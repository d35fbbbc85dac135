"""The type checker in parts, one mixin per stage, put together as `compiler.checker.Checker`:
declarations (module scopes, types, constants, globals, signatures), statements (function bodies, returns,
recursion), expressions (types, constant folding, places, calls) and builtins (calls to the intrinsics of
compiler/intrinsics.py, typed by the rule their table row names).
"""
