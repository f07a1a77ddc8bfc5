"""`python -m fewshot.gate`: the regression gate's short command (it lives in
`fewshot.evaluation.gate`)."""

from fewshot.evaluation.gate import main

if __name__ == "__main__":
    main()
