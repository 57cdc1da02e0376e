/* placeholder: the worker's main arrives with its branch */
int
main(void)
{
    return 1;
}
